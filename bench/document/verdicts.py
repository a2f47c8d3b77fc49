"""The article's claims judged: one function per kind of claim, each a test that can fail.

Every judge takes the evidence (figures with their 95 % intervals, probe outcomes) and returns
(verdict, why). For each kind of claim, RULES says in words what result would make it *holds*,
*does not hold* or *undetermined*, and tests/test_verdicts.py feeds each judge evidence that
reaches each of its verdicts (tests/test_report.py). Reads plain values only: no document, no
code that measured.
"""
from __future__ import annotations

import re


from bench.stats import median_interval, per_repeat_ratios

HOLDS, FAILS, UNDETERMINED, NOT_COMPARABLE = "holds", "does not hold", "undetermined", "not comparable"
VERDICTS = (HOLDS, FAILS, UNDETERMINED, NOT_COMPARABLE)
# "~X" is a magnitude: it holds when the whole 95 % interval lies within [X / this, X × this].
ABOUT_FACTOR = 2.0
# "Zero" slowdown holds when the whole interval of the slowdown lies within ± this share.
NEGLIGIBLE_SLOWDOWN = 0.02
# A claim on kernels ("weak kernel dependence", "Linux 5.15+") needs at least this many kernels.
KERNELS_TO_JUDGE = 3

RULES = {
    "overhead_ns": f"'~X' holds when the 95 % interval of the overhead per move lies within "
                   f"[X/{ABOUT_FACTOR:g}, {ABOUT_FACTOR:g}X]; does not hold when it lies wholly below "
                   f"(cheaper than claimed) or wholly above (dearer than claimed); undetermined when it "
                   "crosses either line. A row flagged ⚠ (unstable) makes no verdict on its own: undetermined",
    "ceiling_per_s": "holds when every search of the one-CPU ceiling (shared placement) held a rate at or above "
                     "the claim; does not hold when every search failed at or below it; undetermined otherwise",
    "unmodified": "'target unmodified' holds when the opponent's own self-check noticed nothing of its observer in "
                  "any repeat of the row; does not hold when it noticed anything (named)",
    "unslowed": f"'zero intrusiveness' in cost holds when the 95 % intervals of the target's slowdown and of "
                f"every bystander's slowdown lie within ±{NEGLIGIBLE_SLOWDOWN:.0%}; does not hold when any lies "
                f"wholly above +{NEGLIGIBLE_SLOWDOWN:.0%}; undetermined otherwise",
    "privileges": "judged on what the kernel answered, never on a check of tapbench's own: holds when a process "
                  "of an unprivileged user (uid 65534) given exactly the claimed capabilities captured exactly "
                  "with the claim's hook; does not hold when the kernel refused one of its calls (the call and "
                  "its errno are named: a tracefs file permission is told apart from a capability), or when a "
                  "root process needed more capabilities than claimed; undetermined when tapbench's own check "
                  "stopped the run before the kernel was asked",
    "kernel_dependence": f"judged from the kernel matrix (`tapbench kernels`): undetermined while fewer than "
                         f"{KERNELS_TO_JUDGE} kernels were measured; 'weak (CO-RE)' holds when the one CO-RE "
                         "object captured exactly on every kernel without headers",
}


def judge_overhead(value: float, interval: tuple[float, float]) -> tuple[str, str]:
    """'~value': a magnitude, refuted from below as much as from above."""
    low, high = interval
    lowest, highest = value / ABOUT_FACTOR, value * ABOUT_FACTOR
    span = f"{low / value:.2f}–{high / value:.2f}× the claim"
    if lowest <= low and high <= highest:
        return HOLDS, f"{span}, within {1 / ABOUT_FACTOR:g}–{ABOUT_FACTOR:g}×"
    if high < lowest:
        return FAILS, f"cheaper than claimed: {span}, wholly below {1 / ABOUT_FACTOR:g}×"
    if low > highest:
        return FAILS, f"dearer than claimed: {span}, wholly above {ABOUT_FACTOR:g}×"
    edge = f"{1 / ABOUT_FACTOR:g}×" if low < lowest else f"{ABOUT_FACTOR:g}×"
    return UNDETERMINED, f"{span}: the interval crosses {edge}"


def unstable_verdict(verdict: str, why: str, unstable: list[str]) -> tuple[str, str]:
    """A row flagged ⚠ makes no verdict on its own."""
    if not unstable or verdict in (UNDETERMINED, NOT_COMPARABLE):
        return verdict, why
    return UNDETERMINED, f"the row is unstable (⚠: {'; '.join(unstable)}); alone it would say {verdict}: {why}"


def rate_text(rate: float | None) -> str:
    """A ladder rate to two significant figures, as known (the bisection's steps are ~9 %)."""
    if rate is None:
        return "-"
    if rate >= 1e6:
        return f"{rate / 1e6:.2g} M/s" if rate < 1e7 else f"{rate / 1e6:.0f} M/s"
    if rate >= 1e3:
        return f"{rate / 1e3:.2g}k/s" if rate < 1e4 else f"{rate / 1e3:.0f}k/s"
    return f"{rate:.0f}/s"


def ceiling_bracket(searches: list[dict]) -> tuple[float | None, float | None]:
    """(the lowest rate any search held last, the highest rate any search failed first): where
    the ceiling lies, with the searches' spread. None: a search held nothing / none failed."""
    held = [s["ceiling"] for s in searches if s["ceiling"] is not None]
    failed = [s["first_failure"] for s in searches if s["first_failure"] is not None]
    return (min(held) if len(held) == len(searches) and held else None), (max(failed) if failed else None)


def judge_ceiling(value: float, searches: list[dict]) -> tuple[str, str]:
    if not searches:
        return NOT_COMPARABLE, "not measured on one CPU"
    held = [s["ceiling"] for s in searches]
    failed = [s["first_failure"] for s in searches]
    count = f"{len(searches)} search{'es' if len(searches) > 1 else ''}"
    if all(h is not None and h >= value for h in held):
        return HOLDS, f"every one of {count} held {rate_text(min(held))} or more: {min(held) / value:.0f}× the claim"
    # a failure where the target alone could not keep the rate either is the machine's limit
    machine = [s for s in searches if "target alone" in (s.get("limited_by") or "")]
    if all(f is not None and f <= value for f in failed) and not machine:
        return FAILS, f"every one of {count} failed at {rate_text(max(failed))} or less"
    if machine and all(f is not None and f <= value for f in failed):
        return UNDETERMINED, "the target alone could not keep the rate where a search failed: the machine's limit"
    return UNDETERMINED, f"the {count} do not all fall on one side of the claimed rate"


def judge_unmodified(noticed: list[str]) -> tuple[str, str]:
    if noticed:
        return FAILS, "the opponent saw " + ", ".join(noticed)
    return HOLDS, "the opponent's self-check saw nothing in any repeat"


def bystander_interval(entry: dict) -> tuple[float, float, float]:
    """(median, low, high) of a bystander's slowdown, watching over alone, per repeat pair."""
    return median_interval(per_repeat_ratios(entry["samples_watching"], entry["samples_alone"]))


def judge_unslowed(target: tuple[float, float, float], bystanders: dict[str, tuple[float, float, float]]
                   ) -> tuple[str, str]:
    """'Zero intrusiveness' faced with what it costs: the watched target's slowdown and every
    bystander's, each (median, low, high)."""
    measured = {"the target": target, **{f"bystander ({kind})": ratio for kind, ratio in bystanders.items()}}
    text = "; ".join(f"{who} {median:+.0%} [{low:+.0%}, {high:+.0%}]" for who, (median, low, high) in measured.items())
    if any(low > NEGLIGIBLE_SLOWDOWN for _, low, _ in measured.values()):
        return FAILS, f"slowed: {text}"
    if all(-NEGLIGIBLE_SLOWDOWN <= low and high <= NEGLIGIBLE_SLOWDOWN for _, low, high in measured.values()):
        return HOLDS, f"within ±{NEGLIGIBLE_SLOWDOWN:.0%}: {text}"
    return UNDETERMINED, f"an interval crosses ±{NEGLIGIBLE_SLOWDOWN:.0%}: {text}"


def capability_set(text: str | None) -> set[str] | None:
    """The capabilities a minimum or a claim names ("none": the empty set)."""
    if text is None:
        return None
    return set(re.findall(r"CAP_[A-Z_]+", text))


def refusal_text(refusal: dict | None) -> str:
    """'the kernel refused openat(/sys/...) with EACCES (a tracefs file permission)'."""
    if not refusal:
        return "no call was refused"
    return f"the kernel refused {refusal['call']} with {refusal['errno']} ({refusal['kind']})"


def judge_privileges(claimed: str, probe: dict | None, others: list[dict]) -> tuple[str, str]:
    """probe: the least-privilege probe of the claim's hook; others: those of the technique's
    other variants, named in the reason (another hook may need less)."""
    if probe is None:
        return NOT_COMPARABLE, "not measured"
    verdict, why = _privileges(claimed, probe)
    elsewhere = "; ".join(f"{o['label']} as uid {o['as_user']['uid']}: "
                          + ("exact" if o["as_user"]["worked"] else refusal_text(o["as_user"].get("refused")))
                          for o in others if o.get("as_user"))
    return verdict, f"{probe['label']}: {why}" + (f" (elsewhere: {elsewhere})" if elsewhere else "")


def _privileges(claimed: str, probe: dict) -> tuple[str, str]:
    needed = capability_set(probe["minimum"])
    if needed is None:
        return FAILS, "none of the capability sets tried worked, even as root"
    if not needed <= capability_set(claimed):
        return FAILS, f"root needed {probe['minimum']}"
    as_user = probe.get("as_user")
    if as_user is None:
        return UNDETERMINED, "not tried as an unprivileged user"
    # the unprivileged run is given the least set root needed: fewer than claimed, or as many
    tried = capability_set(as_user.get("capabilities") or probe["minimum"])
    given = " + ".join(sorted(tried)) or "no capability"
    if as_user["worked"]:
        return HOLDS, f"exact as uid {as_user['uid']} with only {given}"
    refused = as_user.get("refused")
    if not refused:
        return UNDETERMINED, (f"as uid {as_user['uid']}, tapbench stopped before the kernel refused anything "
                              f"({as_user['error']})")
    if refused["kind"].startswith("tapbench's own"):
        return UNDETERMINED, f"as uid {as_user['uid']}, {refusal_text(refused)}: not the claim's to answer"
    if tried != capability_set(claimed):
        return UNDETERMINED, (f"as uid {as_user['uid']} with only {given} (fewer than claimed), "
                              f"{refusal_text(refused)}")
    return FAILS, f"as uid {as_user['uid']} with only {given}, {refusal_text(refused)}"


def judge_kernel_claim(claim: str, matrix_verdict: dict | None, kernels_measured: list[str]) -> tuple[str, str]:
    """A claim about kernels: the kernel matrix's verdict once it has enough kernels."""
    if matrix_verdict is not None and len(kernels_measured) >= KERNELS_TO_JUDGE:
        return matrix_verdict["verdict"], matrix_verdict["why"]
    shown = ", ".join(kernels_measured) or "none"
    return UNDETERMINED, (f"measured on {len(kernels_measured)} kernel{'s' if len(kernels_measured) != 1 else ''} "
                          f"({shown}); '{claim}' needs at least {KERNELS_TO_JUDGE} (`tapbench kernels`)")


def agreement(verdicts: dict[str, str]) -> str | None:
    """'holds in `a`; does not hold in `b`' when the places that judged the claim do not all
    agree (a place where it was not comparable judged nothing); None if they do."""
    verdicts = {where: said for where, said in verdicts.items() if said != NOT_COMPARABLE}
    if len(set(verdicts.values())) <= 1:
        return None
    counts = {v: sorted(where for where, said in verdicts.items() if said == v) for v in VERDICTS}
    return "; ".join(f"{v} in {', '.join(f'`{w}`' for w in where)}" for v, where in counts.items() if where)

