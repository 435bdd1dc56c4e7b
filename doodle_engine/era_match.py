"""The era told from the file itself: rebuild under every era its settings layout allows and
keep the one whose label matches the stored label best.

Used when the path carries no results-folder date (renamed files, Coast Train's release) and
the layout was written by more than one Doodler version, or when asked (``era="auto"``).
Candidates that share features or a fit (see ``Recipe.feature_key`` / ``fit_key``) compute
them once.  Random-forest candidates are compared with one fixed seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .eras import recipe as era_recipe
from .eras import recipes_for_layout
from .errors import DoodleError
from .reconstruct import reconstruct
from .settings import decode_settings, encode_settings, layout_key

#: era_source of a result whose era was chosen by matching the stored label
BEST_MATCH = "best match"
#: ... when another candidate matched it exactly as well (the layout's assumed era was kept)
BEST_MATCH_TIE = "best match (tie)"
#: ... when the layout's assumed era, rebuilt first, gave the stored label exactly: no other
#: era can match better and a tie would keep it, so the others were not rebuilt
BEST_MATCH_EXACT = "best match (exact, others not rebuilt)"


@dataclass
class Candidate:
    era: str
    differ: int  # pixels that differ from the stored label
    accuracy: float


@dataclass
class EraMatch:
    era: str  # the chosen era
    result: object  # its Reconstruction (settings carry era_source "best match")
    candidates: list  # every Candidate, best first

    @property
    def runner_up(self):
        return self.candidates[1] if len(self.candidates) > 1 else None

    def row(self):
        """Table columns: the runner-up's era and how much worse it matched: the pixels it
        gets wrong beyond those the chosen era gets wrong (``runner_up_extra_px``; 0 is a
        tie, not an exact runner-up) and the accuracy points it loses."""
        ru, best = self.runner_up, self.candidates[0]
        return {"runner_up": ru.era if ru else "",
                "runner_up_extra_px": (ru.differ - best.differ) if ru else None,
                "runner_up_points": 100 * (best.accuracy - ru.accuracy) if ru else None,
                "candidates": ";".join(f"{c.era}:{c.differ}" for c in self.candidates)}


def candidate_eras(settings):
    """The eras that could have written ``settings`` (its layout's recipes, oldest first)."""
    if settings.layout == 0:
        return [r.name for r in recipes_for_layout("none")]
    return [r.name for r in recipes_for_layout(layout_key(encode_settings(settings)))]


def needs_match(settings):
    """Whether ``settings``' era was assumed (no date) among several possible ones."""
    return (settings is not None and settings.era_source.startswith("layout (no date")
            and len(candidate_eras(settings)) > 1)


def _with_era(settings, era, where):
    if settings.layout == 0:
        return dataclasses.replace(settings, era=era, era_source=BEST_MATCH)
    s = decode_settings(encode_settings(settings), era=era, path=where)
    return dataclasses.replace(s, era_source=BEST_MATCH)


def match_era(record, seed=0, mode="exact", crf_backend=None, workers=1, eras=None,
              stop_at_exact=False) -> EraMatch:
    """Rebuild ``record`` under each candidate era (or ``eras``) and keep the best match of
    its stored label.  Ties keep the era the layout assumes, else the newest tied one.

    The assumed era is rebuilt first.  With ``stop_at_exact``, when it gives the stored label
    exactly the others are not rebuilt: the choice is the same (nothing matches better, and
    a tie keeps the assumed era), only the runner-up is unknown (``BEST_MATCH_EXACT``)."""
    where = record.path
    if record.label is None:
        raise DoodleError(where, "has no stored label: the era cannot be told from it "
                                 "(pass --era)")
    if record.settings is None:
        raise DoodleError(where, "has no settings: pass --era")
    names = list(eras) if eras is not None else candidate_eras(record.settings)
    assumed = record.settings.era
    tried = sorted(names, key=lambda n: n != assumed)  # the assumed era first
    shared = {}
    results, cands = {}, []
    for name in tried:
        era_recipe(name, where)
        settings = _with_era(record.settings, name, where)
        try:
            res = reconstruct(record, settings=settings, seed=seed, mode=mode,
                              crf_backend=crf_backend, workers=workers, shared=shared)
        except DoodleError:
            continue  # an era these settings cannot run under (e.g. no n_sigmas)
        differ = int((res.label0 != record.label).sum())
        results[name] = res
        cands.append(Candidate(name, differ, 1 - differ / record.label.size))
        if stop_at_exact and differ == 0 and name == assumed and len(names) > 1:
            res.settings = dataclasses.replace(res.settings, era_source=BEST_MATCH_EXACT)
            return EraMatch(name, res, cands)
    if not cands:
        raise DoodleError(where, f"no candidate era could rebuild it ({', '.join(names)})")
    order = {n: i for i, n in enumerate(names)}
    cands.sort(key=lambda c: (c.differ, c.era != assumed, -order[c.era]))
    best = cands[0].era
    res = results[best]
    if len(cands) > 1 and cands[1].differ == cands[0].differ:
        res.settings = dataclasses.replace(res.settings, era_source=BEST_MATCH_TIE)
    return EraMatch(best, res, cands)
