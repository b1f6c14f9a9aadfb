"""Prose = printout: every number a notebook's text states was printed (or set) by the notebook.

    .venv/bin/python tools/prose_check.py notebooks/02_*.ipynb solutions/02_*.ipynb

For each number in a markdown cell, the check looks for a value the notebook
printed (any code cell's output) that equals it after rounding to the prose's
precision ("0.14" matches a printed 0.1387; "3" matches 2.8), or a literal the
notebook's code sets (``np.ones(784)``, ``eps=1e-5``). A percentage may match a
printed fraction ("16%" and 0.162); "2.6×" matches a printed ratio 2.6. A stated
range ("2 to 3 times", "0.90–0.93", "between 0.2 and 0.3") passes when a printed
value lies inside it, or when both ends are printed.

Not checked (the exemptions, each for a reason):

* a sentence that cites a paper (an author and a year: "Ioffe & Szegedy (2015)
  report ...", "Santurkar et al. 2018"): the number is the paper's;
* years (1900-2099), and small counts, the integers 0 to 12 without a ratio or
  percent sign ("two layers", "3 seeds"): counting words are not measurements;
* numbers that name things: sections, notebooks, parts, questions, exercises,
  steps, equations and algorithms ("section 6", "notebooks 01 and 02", "§3.2",
  "Question 2 (2 points)"), list and heading numbering;
* code spans and fenced code (`h=1e-3`): they show code, not results; links' targets;
* equation constants inside LaTeX math: digits glued to a command or a letter
  (``\\frac1N``, ``x_2``, ``\\sigma^2``) and the exponents of powers of ten, whose
  value is read as a whole (``10^{-7}`` is the number 1e-7 and is checked).

Prints each offending sentence with the unmatched number and the printed values
closest to it; exits 1 if there is any.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

# --- numbers the notebook printed or set ---------------------------------------------

# A number in printed text: optional sign, thousands separators, decimals, exponent.
PRINTED_NUMBER = re.compile(
    r"(?<![\w.])[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?(?!(?!x\b)\w)"  # "2.2x" too
)


def _parse(text: str) -> float | None:
    text = text.replace("−", "-").replace(",", "")
    if not re.search(r"\d", text):
        return None
    try:
        return float(text)
    except ValueError:
        return None


RATIO_WORDS = re.compile(r"(?i)ratio|speed-?up|factor|times|faster|slower")


def printed_values(notebook: dict, ratios_only: bool = False) -> list[float]:
    """Every number in the text the notebook's code cells printed or displayed.

    ratios_only: only the printed ratios, numbers followed by x, × or "times", or
    shortly after the word ratio, speed-up, factor or times (what a "2.6×" in the
    prose must match).
    """
    values = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = output.get("text", "")
            else:
                text = output.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            for match in PRINTED_NUMBER.finditer(text):
                value = _parse(match.group())
                if value is None:
                    continue
                if ratios_only:
                    before = text[max(0, match.start() - 25) : match.start()].split("\n")[-1]
                    if not (re.match(r"\s?(?:[x×]|times)", text[match.end() :]) or RATIO_WORDS.search(before)):
                        continue
                values.append(value)
    return values


def code_literals(notebook: dict) -> list[float]:
    """Every numeric literal in the notebook's code (the values its code sets)."""
    values = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        except (tokenize.TokenError, IndentationError, SyntaxError):
            tokens = []
        for token in tokens:
            if token.type == tokenize.NUMBER:
                with contextlib.suppress(ValueError):
                    values.append(float(token.string.replace("_", "").rstrip("jJ")))
            elif token.type == tokenize.STRING:  # numbers set inside strings: "seed+3", "1e-3"
                values.extend(v for m in PRINTED_NUMBER.finditer(token.string) if (v := _parse(m.group())) is not None)
    return values


# --- numbers the prose states -------------------------------------------------------------


@dataclass
class Stated:
    """One number (or range) in the prose, and how precisely it is stated."""

    text: str  # as written
    low: float  # value, or the low end of a range
    high: float  # = low unless a range
    tolerance: float  # half a unit of the last stated digit
    percent: bool  # "16%": may match a printed fraction 0.16
    ratio: bool = False  # "2.6×", "3 times": must match a printed ratio


NAMING_WORDS = (
    r"notebooks?|sections?|§|parts?|questions?|exercises?|steps?|equations?|eqs?\.|algorithms?|"
    r"figures?|figs?\.|tables?|chapters?|issues?|solutions?|points?|items?|versions?|python|rows?|columns?|cells?"
)
NAMED = re.compile(rf"(?i)(?<![\w])(?:{NAMING_WORDS})\s*(?:\d+(?:\.\d+)*[a-z]?(?:\s*(?:,|and|or|to|–|-)\s*)?)+")
NOT_AN_AUTHOR = r"(?!(?:In|Since|By|From|After|Before|Until|Until|Of|The|On|At|For|Up|To|And|Or)\b)"
CITATION = re.compile(
    rf"\b{NOT_AN_AUTHOR}[A-Z][A-Za-z'\-]+(?:\s+et\s+al\.?|\s*(?:&|and)\s*[A-Z][A-Za-z'\-]+)?,?\s*\(?\s*(?:19|20)\d\d[a-z]?\b"
)
# A number in prose: thousands separators, decimals, an optional exponent or a power of ten.
NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+−]?\d+)?"
POWER_OF_TEN = re.compile(r"(?<![\w.])(?:(\d+(?:\.\d+)?)\s*(?:\\times|×|\\cdot)\s*)?10\^\{?([-−]?\d+)\}?")
# A ratio's sign: "2.6×", "2.6x", "3 times", "ten-fold"; not the × of a product or a shape ("9 × 100", "28×28").
RATIO_UNIT = r"×(?!\s*\d)|x(?![\w])|\s+times\b|-?fold\b"
UNIT = rf"(?:\s*(?:%|\\%)|\s*(?:{RATIO_UNIT}))"
NOT_GLUED = r"(?<![\w.^_\\#])(?<![A-Za-z]-)"  # not part of a name: float32, x_2, ResNet-50, #5406
TOKEN = re.compile(rf"{NOT_GLUED}(?P<num>{NUMBER})(?P<unit>{UNIT})?(?![\w])")
RANGE = re.compile(
    rf"{NOT_GLUED}(?:between\s+)?(?P<a>{NUMBER})(?P<ua>{UNIT})?\s*"
    rf"(?:–|—|-|to|and)\s*(?P<b>{NUMBER})(?P<ub>{UNIT})?(?![\w])"
)


def _decimals(number: str) -> int:
    mantissa = number.split("e")[0].split("E")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _stated(number: str, unit: str | None) -> Stated:
    value = _parse(number)
    if "e" in number.lower():
        mantissa, exponent = number.lower().replace("−", "-").split("e")
        tolerance = 0.5 * 10.0 ** (int(exponent) - _decimals(mantissa))
    else:
        tolerance = 0.5 * 10.0 ** -_decimals(number)
    percent = bool(unit) and "%" in unit
    return Stated(number + (unit or ""), value, value, tolerance, percent, bool(unit) and not percent)


def _clean(markdown: str) -> str:
    """The markdown with what is not prose blanked out (code, links, numbering, names, equation constants)."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = text.replace("{,}", ",")  # LaTeX thousands separator: 50{,}176
    text = re.sub(r"[\w.-]+/[\w.-]+#\d+", " ", text)  # issue references: pytorch/pytorch#5406
    text = re.sub(r"\d+(?:\s*×\s*\d+)+", " SHAPE ", text)  # shapes and products: 28×28, 9 × 100
    text = re.sub(r"`[^`]*`", " CODE ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"<[^>]+>", " ", text)  # html tags
    text = re.sub(r"(?m)^\s*#+\s*\d+(?:\.\d+)*\.?\s", "# ", text)  # "## 5. Speed"
    text = re.sub(r"(?m)^\s*\d+[.)]\s", "* ", text)  # "1. From the shift"
    return text


def _math_to_numbers(text: str) -> str:
    """In LaTeX math, read powers of ten as numbers and drop equation constants."""

    def power(match):
        mantissa, exponent = match.group(1), match.group(2).replace("−", "-")
        return f" {mantissa or '1'}e{exponent} "

    def math(match):
        inner = POWER_OF_TEN.sub(power, match.group(1))
        inner = re.sub(r"\\[a-zA-Z]+", lambda m: m.group() + " ", inner)  # \frac1N -> glued digits stay glued
        inner = re.sub(r"(?<=[\\A-Za-z_^{])\d+", "", inner)  # digits glued to a command/letter/sub/superscript
        # sub- and superscripts (x_{c,i}, (...)^{-3/2}); a power's base is a number, not a ratio: 0.14^{10} times
        inner = re.sub(r"[\^_]\{[^}]*\}", " POWER ", inner)
        inner = re.sub(r"\\[a-zA-Z]+", " ", inner)
        return " " + inner + " "

    text = re.sub(r"\$\$(.+?)\$\$", math, text, flags=re.S)
    return re.sub(r"\$(.+?)\$", math, text, flags=re.S)


def sentences(markdown: str) -> list[str]:
    """Sentences of a markdown cell, list items and lines kept apart."""
    text = _clean(markdown)
    out = []
    for block in re.split(r"\n\s*\n|\n(?=\s*[*\-#|])", text):
        # split after . ! ? followed by a space and a capital, a paren, math or emphasis
        out.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(*$\[])", block.strip()) if s.strip())
    return out


def stated_numbers(sentence: str) -> list[Stated]:
    """The numbers a sentence states, exemptions removed; ranges kept whole."""
    if CITATION.search(sentence):
        return []
    text = NAMED.sub(" ", sentence)
    text = _math_to_numbers(text)
    text = re.sub(r"\((?:19|20)\d\d\)", " ", text)
    found = []
    for match in RANGE.finditer(text):
        if re.search(r"\bfrom\s+$", text[: match.start()]):  # "falls from 0.63 to 0.24": two values
            continue
        unit = match.group("ub") or match.group("ua")
        a, b = _stated(match.group("a"), unit), _stated(match.group("b"), unit)
        low, high = sorted((a.low, b.low))
        found.append(Stated(match.group().strip(), low, high, max(a.tolerance, b.tolerance), b.percent, b.ratio))
        text = text[: match.start()] + " " * (match.end() - match.start()) + text[match.end() :]
    for match in TOKEN.finditer(text):
        stated = _stated(match.group("num"), match.group("unit"))
        small_count = (
            not match.group("unit") and "." not in match.group("num") and "e" not in match.group("num").lower()
        )
        if small_count and (stated.low <= 12 or 1900 <= stated.low <= 2099):
            continue
        found.append(stated)
    return found


# --- matching ------------------------------------------------------------------------------

# Equation constants a sentence may state without printing them, each named:
EQUATION_CONSTANTS = {
    "ln 10, the cross-entropy of a uniform guess over 10 classes": math.log(10),
    "pi": math.pi,
    "e": math.e,
    "sqrt 2, He's gain for ReLU": math.sqrt(2),
    "1/sqrt 2": 1 / math.sqrt(2),
    "5/3, the tanh gain": 5 / 3,
}


@dataclass
class Known:
    """What a notebook printed or set: the numbers a sentence may state."""

    printed: list[float]
    ratios: list[float]  # the printed ratios (printed_values(ratios_only=True))
    literals: list[float]  # the code's literals and the named equation constants

    @classmethod
    def of(cls, notebook: dict) -> Known:
        literals = code_literals(notebook) + list(EQUATION_CONSTANTS.values())
        return cls(printed_values(notebook), printed_values(notebook, ratios_only=True), literals)


def _equal(stated: Stated, value: float, number: float) -> bool:
    """value, rounded to the precision of the stated number (or as a percentage), equals it."""
    candidates = [abs(value), abs(value) * 100] if stated.percent else [abs(value)]
    return any(abs(v - abs(number)) <= stated.tolerance * (1 + 1e-9) for v in candidates)


def matches(stated: Stated, known: Known) -> bool:
    """A single number equals a printed value or a literal; a range contains a printed one, or both ends match."""
    measured = known.ratios if stated.ratio else known.printed
    if stated.low == stated.high:
        return any(_equal(stated, v, stated.low) for v in measured + known.literals)
    for value in measured:
        candidates = [abs(value), abs(value) * 100] if stated.percent else [abs(value)]
        if any(stated.low - stated.tolerance <= v <= stated.high + stated.tolerance for v in candidates):
            return True
    return all(any(_equal(stated, v, end) for v in measured + known.literals) for end in (stated.low, stated.high))


def closest(stated: Stated, values: list[float], n: int = 3) -> list[float]:
    target = max(abs(stated.low + stated.high) / 2, 1e-300)
    unique = sorted(set(abs(v) for v in values if math.isfinite(v)))
    return sorted(unique, key=lambda v: abs(math.log(max(v, 1e-300) / target)))[:n]


@dataclass
class Problem:
    cell: int
    sentence: str
    number: str
    nearest: list[float]

    def __str__(self):
        nearest = ", ".join(f"{v:g}" for v in self.nearest) or "none"
        return f"  cell {self.cell}: {self.number!r} not printed (closest printed: {nearest})\n    {self.sentence}"


def check_notebook(notebook: dict) -> list[Problem]:
    """The numbers in the notebook's markdown that it neither printed nor set."""
    known = Known.of(notebook)
    problems = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for sentence in sentences(source):
            for stated in stated_numbers(sentence):
                if not matches(stated, known):
                    nearest = closest(stated, known.ratios if stated.ratio else known.printed)
                    problems.append(Problem(index, " ".join(sentence.split()), stated.text, nearest))
    return problems


def check_file(path) -> list[Problem]:
    return check_notebook(json.loads(Path(path).read_text(encoding="utf-8")))


def main(argv=None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__.splitlines()[2].strip())
        return 2
    failed = 0
    for path in paths:
        problems = check_file(path)
        print(
            f"{'FAIL' if problems else 'ok  '} {path}"
            + (f": {len(problems)} number(s) not printed" if problems else "")
        )
        for problem in problems:
            print(problem)
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
