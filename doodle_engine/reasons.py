"""Why a validation result is what it is: short words for the table, a sentence for each.

A rebuild below 100 % has known causes the jobs record in its row: the forest history a
file alone cannot have (``history``), what the reconstruction did (``notes``: one class
doodled, a class lost and the CRF run again...), an era assumed for want of a date
(``era_source``), Doodler's unseeded forest, an MLP trained on more rows than the era's
cap (sensitive to the float order of sums), a mode that trades agreement for speed.  This
module turns them into a ``reason`` per row, so the reason stands beside the number wherever
the number is shown (terminal table, CSV, plots, HTML page).
"""

from __future__ import annotations

from .classifier import MLP_MAX_SAMPLES
from .eras import ERAS
from .eras import recipe as era_recipe
from .table import cell_text as _text

#: the reason of a result below 100 % for which no known cause applies
NO_KNOWN_CAUSE = "no known cause"

#: modes that are not exact by design (docs/measurements/frontier.md)
_INEXACT_MODES = ("fast", "fastest")


def _below(row):
    try:
        return float(row.get("accuracy")) < 1.0
    except (TypeError, ValueError):
        return False


def _training_rows(row):
    """The classifier's training rows before the era's cap (doodled pixels, strided by the
    classifier downsample factor, as ``classifier.training_rows`` takes them); 0 unknown."""
    try:
        doodled = round(float(row.get("doodle_fraction")) * float(row.get("height"))
                        * float(row.get("width")))
        return -(-doodled // max(1, int(float(row.get("classifier_downsample")))))
    except (TypeError, ValueError):
        return 0


def causes(row):
    """The known causes for one table row (a dict or pandas Series), as (short, sentence)
    pairs.  What the reconstruction did (``notes``) is always given; the causes of a result
    below 100 % (missing history, unseeded forest, assumed era, inexact mode) only where the
    result is below 100 %."""
    found = []
    for note in filter(None, _text(row.get("notes")).split("; ")):
        found.append((note.split(":", 1)[0].strip(), note))
    if not _below(row):
        return found
    history = _text(row.get("history"))
    if history:
        found.append(("history missing", history))
    era = _text(row.get("era"))
    if era in ERAS and era_recipe(era).classifier == "rf":
        found.append(("forest unseeded", ("Doodler's random forest was unseeded, so a rebuild "
                                          "with another seed differs (--seeds N shows the "
                                          "spread)")))
    rows = _training_rows(row)
    if era in ERAS and era_recipe(era).classifier == "mlp" and rows > MLP_MAX_SAMPLES:
        found.append(("float order", (f"the MLP trained on Doodler's cap of "
                                      f"{MLP_MAX_SAMPLES:,} rows drawn from more doodled "
                                      "pixels, a training sensitive to the order of "
                                      "floating-point sums; the 2021 BLAS that made the label "
                                      "cannot be re-run (docs/measurements/fidelity.md)")))
    source = _text(row.get("era_source"))
    # the sentences below are the legend's for every row with the cause: the row's own era
    # and source stand in its table columns
    if "assum" in source:
        found.append(("era assumed", ("the era was assumed from the settings layout: the file "
                                      "carries no date; --era sets it, --era auto tells it "
                                      "from the stored label")))
    if source == "user":
        found.append(("era set", ("the era was set by --era: the file may have been made by "
                                  "another era; without --era the engine reads it from the "
                                  "file's date and layout or tells it from the stored label")))
    mode = _text(row.get("mode"))
    if mode in _INEXACT_MODES:
        found.append((f"mode {mode}", (f"mode {mode} trades agreement for speed by design "
                                       "(docs/measurements/frontier.md); --mode exact gives Doodler's "
                                       "labels")))
    return found


def reason(row):
    """The ``reason`` cell of one row: the short causes joined by ', ' ('' for a result at
    100 % with nothing to say, :data:`NO_KNOWN_CAUSE` for one below 100 % with no cause)."""
    if _text(row.get("error")):
        return ""
    shorts = list(dict.fromkeys(short for short, _ in causes(row)))
    if not shorts and _below(row):
        return NO_KNOWN_CAUSE
    return ", ".join(shorts)


def _with_reason(columns):
    """``columns`` with ``reason`` placed after the accuracy columns."""
    cols = [c for c in columns if c != "reason"]
    after = max(cols.index(c) for c in ("accuracy", "accuracy_min", "accuracy_median",
                                       "accuracy_max") if c in cols)
    return cols[:after + 1] + ["reason"] + cols[after + 1:]


def add_reasons(frame):
    """``frame`` with a ``reason`` column (:func:`reason` of every row, also of rows resumed
    from an earlier table), placed after the accuracy columns."""
    if "accuracy" not in frame or not len(frame):
        return frame
    frame = frame.copy()
    frame["reason"] = frame.apply(reason, axis=1)
    return frame[_with_reason(frame.columns)]


def reasons_of(rows, columns):
    """(``rows`` each with its ``reason``, ``columns`` with ``reason`` placed after the
    accuracy columns): :func:`add_reasons` for the row dicts of a run."""
    if "accuracy" not in columns or not rows:
        return rows, columns
    return [{**r, "reason": reason(r)} for r in rows], _with_reason(columns)


def explained(short, sentence):
    """``short: sentence`` unless the sentence starts with its short word already."""
    return sentence if sentence.startswith(short) else f"{short}: {sentence}"


def detail(short, sentence):
    """The sentence without its leading ``short:`` (for a page that shows the short word
    beside it)."""
    head = f"{short}:"
    return sentence[len(head):].strip() if sentence.startswith(head) else sentence


def legend(table):
    """{short cause: sentence} for every reason given in ``table`` (a pandas DataFrame or a
    list of row dicts; each cause once, in order of first appearance): the causes of results
    below 100 % and what the reconstruction did (a note such as ``one class doodled``, given
    also at 100 %)."""
    out = {}
    rows = table.to_dict("records") if hasattr(table, "to_dict") else table
    for row in rows:
        if not _text(row.get("error")):
            for short, sentence in causes(row):
                out.setdefault(short, sentence)
    return out
