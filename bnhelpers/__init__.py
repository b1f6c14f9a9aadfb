"""bnhelpers: the tested numpy code behind the batch normalization course."""
