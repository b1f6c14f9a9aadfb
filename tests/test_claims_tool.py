"""tools/claims.py: the seed offsets make claims tries (the fixed ones, a rotating one, a SEEDS= sweep)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import claims  # noqa: E402


def test_a_sweep_of_seeds_from_ranges_and_lists():
    assert claims.parse_seeds("0-3") == ["seed+0", "seed+1", "seed+2", "seed+3"]
    assert claims.parse_seeds("7, 2-3,7") == ["seed+7", "seed+2", "seed+3"]
    for bad in ("", "a-3", "5-2", "-1", "1.5", "0-"):
        with pytest.raises(ValueError, match="seeds must look like 0-9"):
            claims.parse_seeds(bad)


def test_the_rotating_offset_is_one_no_one_chose_and_is_reproducible():
    offset, source = claims.rotating_offset()
    assert claims.ROTATING_RANGE[0] <= offset < claims.ROTATING_RANGE[1]
    assert source.startswith(("commit ", "date "))
    assert claims.rotating_offset() == (offset, source)
    configs = claims.default_configs()
    assert configs[:4] == ["seed+1", "seed+2", "seed+3", f"seed+{offset}"]
    assert set(claims.CONFIGS) <= set(configs)
    assert claims.config_named(f"seed+{offset}")[0]["BNHELPERS_SEED_OFFSET"] == str(offset)


def test_seeds_and_configs_together_or_a_bad_sweep_are_refused(capsys):
    with pytest.raises(SystemExit):
        claims.main(["--seeds", "0-2", "--configs", "seed+1", "x.ipynb"])
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        claims.main(["--seeds", "9-2", "x.ipynb"])
    assert "seeds must look like" in capsys.readouterr().err
