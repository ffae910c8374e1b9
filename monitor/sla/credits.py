"""Uptime credits: exact decimal money from a month's figures and the contract's tier tables.

Rules (documented for billing; tested against hand-computed scenarios):

* Each tier names an objective (availability by default), a threshold
  ``below`` and a ``credit`` in percent. For an objective, the tier with the
  lowest ``below`` that the month's compliance is under applies
  (99.9/99.0/95.0 -> the 95.0 tier for 94 %).
* Compliance, in percent: availability itself; for latency the share of
  RTT samples within the limit; for loss, jitter and one-way delay the share
  of reachable cycles within the limit; for MOS the share of voice cycles
  at or above the objective.
* ``credit_basis: contract``: the tiers apply to the contract's figures
  (its targets combined) and the contract's ``monthly_fee``.
  ``credit_basis: target``: each circuit is judged on its own figures,
  against its own ``monthly_fee``.
* Several objectives' credits either add up (``credit_combine: sum``) or the
  largest wins (``max``), per fee they apply to.
* ``credit_cap`` caps the month's credit at that share of the fee (per
  contract, over the sum of the fees the credits were computed on).
* Compliance is compared with each tier's ``below`` as an exact fraction: a month
  13 ms short of 99.5 % is below 99.5 %, whatever the display shows. Displayed
  percentages are truncated (never rounded up), so a missed objective never
  displays as met.
* Amounts are Decimal, rounded half-up to the currency's minor unit.
* Coverage: a credit judged on too little evidence is not final. Below the
  contract's ``credit_min_coverage`` (90 % by default) of measured time (the
  time outside maintenance that has evidence; see ``TargetMonth.coverage``)
  the credit is *provisional*, with the reason, or withheld (0) under
  ``credit_low_coverage: withhold``. Per contract under ``credit_basis:
  contract``, per circuit under ``target``. A month still in progress is
  below it until enough of the month has passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.config import Contract, CreditTier
from monitor.sla.rollup import Rollup
from monitor.sla.sketch import RttSketch

__all__ = ["CreditLine", "ContractCredit", "compliance", "tier_for", "contract_credit", "money", "minor_unit",
           "display_pct"]

def minor_unit(currency: str) -> int:
    """Digits after the decimal point of ``currency``, from ISO 4217 (the maintained iso4217 package):
    0 for JPY, XOF or UGX, 3 for BHD, IQD or LYD, 2 for most. The config accepts only codes that have one."""
    from iso4217 import Currency

    exponent = Currency(currency).exponent
    if exponent is None:
        raise ValueError(f"{currency} has no minor unit")
    return int(exponent)


def money(amount: Decimal, currency: str) -> Decimal:
    """An amount rounded half up to the currency's ISO 4217 minor unit (for display and payment only)."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


def display_pct(value: Fraction, places: int = 6) -> Decimal:
    """A percentage for display: truncated to ``places`` decimals, never rounded up."""
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-places),
                                                                            rounding=ROUND_DOWN)


def _pct(frac: Fraction) -> Fraction:
    return frac * 100


def compliance(objective: str, contract: Contract, availability: Fraction | None, rollup: Rollup) -> Fraction | None:
    """The month's compliance with ``objective`` in percent, exact; None when there is nothing to judge."""
    obj = contract.objectives
    if objective == "availability":
        return None if availability is None else _pct(availability)
    if objective == "latency":
        if obj.latency is None or rollup.rtt.count == 0:
            return None
        return _pct(Fraction(share_at_most(rollup.rtt, obj.latency.max), rollup.rtt.count))
    if objective == "response_time":
        if obj.response_time is None or rollup.response.count == 0:
            return None
        return _pct(Fraction(share_at_most(rollup.response, obj.response_time.max), rollup.response.count))
    counters = {"loss": rollup.loss_ok, "jitter": rollup.jitter_ok, "one_way_delay": rollup.delay_ok}
    if objective in counters:
        if getattr(obj, objective) is None or rollup.quality_count == 0:
            return None
        return _pct(Fraction(counters[objective], rollup.quality_count))
    if objective == "mos":
        if obj.mos is None or rollup.mos_count == 0:
            return None
        return _pct(Fraction(rollup.mos_count - rollup.mos_below, rollup.mos_count))
    raise ValueError(f"unknown objective {objective!r}")


def share_at_most(sketch: RttSketch, limit: float) -> int:
    """How many sketched values are at most ``limit`` (bucket resolution)."""
    from monitor.sla.sketch import _MAPPING

    key_limit = _MAPPING.key(limit)
    return sum(n for key, n in sketch.items() if key <= key_limit)


def tier_for(value: Fraction | Decimal | None, tiers: list[CreditTier], objective: str) -> CreditTier | None:
    """The tier with the lowest ``below`` that ``value`` is under, compared exactly."""
    if value is None:
        return None
    exact = Fraction(value)
    matching = [t for t in tiers if t.objective == objective and exact < Fraction(t.below)]
    return min(matching, key=lambda t: t.below) if matching else None


@dataclass(slots=True)
class CreditLine:
    """One objective's credit for one scope (the contract or a target), with its compliance and evidence."""

    scope: str  # "contract" or a target id
    objective: str
    compliance_pct: Decimal | None
    tier_below_pct: Decimal | None
    credit_pct: Decimal
    fee: Decimal
    amount: Decimal
    #: the outages behind the line (the report's outage items; passed through, never read here)
    evidence: Sequence[Any] = field(default_factory=list)


@dataclass(slots=True)
class ContractCredit:
    """A contract's credit for the month: its lines, the cap, and whether it is final."""

    basis: str
    combine: str
    currency: str
    fees: Decimal
    cap_pct: Decimal | None
    lines: list[CreditLine]
    uncapped: Decimal
    total: Decimal
    #: "final", "provisional" (too little evidence) or "withheld" (too little evidence, policy withhold)
    status: str = "final"
    #: why the credit is not final, per scope ("contract" or a target id)
    coverage_notes: list[str] = field(default_factory=list)

    @property
    def capped(self) -> bool:
        """Whether the contract's cap reduced the credit."""
        return self.total < self.uncapped


#: objectives judged on the contract's customer requests (#28), not on a target's measurements
REQUEST_OBJECTIVES = ("first_response", "resolution")


def _judge(scope: str, contract: Contract, fee: Decimal, availability: Fraction | None, rollup: Rollup | None,
           evidence: Sequence[Any], requests: Mapping[str, Fraction | None] | None = None
           ) -> tuple[list[CreditLine], Decimal]:
    """Lines for one fee; returns them and the credit percent that applies after combining. ``rollup`` None:
    only the request objectives (from ``requests``: the share met, in percent) are judged; ``requests`` None:
    only the measured ones."""
    lines = []
    for objective in dict.fromkeys(t.objective for t in contract.credit_tiers):
        if objective in REQUEST_OBJECTIVES:
            if requests is None:
                continue
            value = requests.get(objective)
        elif rollup is None:
            continue
        else:
            value = compliance(objective, contract, availability, rollup)
        tier = tier_for(value, contract.credit_tiers, objective)
        if tier is None or value is None:
            continue
        lines.append(CreditLine(scope, objective, display_pct(value), tier.below, tier.credit, fee,
                                money(fee * tier.credit / 100, contract.currency), evidence))
    if not lines:
        return [], Decimal(0)
    pcts = [line.credit_pct for line in lines]
    pct = sum(pcts, Decimal(0)) if contract.credit_combine == "sum" else max(pcts)
    if contract.credit_combine == "max":
        winner = max(lines, key=lambda line: line.credit_pct)
        for line in lines:
            if line is not winner:
                line.amount = Decimal(0)  # shown, but the largest credit wins
    return lines, min(pct, Decimal(100))


def _low_coverage(scope: str, coverage: Fraction | None, minimum: Decimal) -> str | None:
    if coverage is not None and coverage * 100 >= Fraction(minimum):
        return None
    shown = "no" if coverage is None else f"{display_pct(coverage * 100, 2)} %"
    return (f"{scope}: {shown} of the time outside maintenance has evidence, below the minimum of {minimum} % "
            "(unknown time, a circuit not yet monitored, or the month still running)")


def contract_credit(contract: Contract, targets: list[Any], combined_availability: Fraction | None,
                    combined_rollup: Rollup, target_fees: dict[str, Decimal | None],
                    evidence: Mapping[str, Sequence[Any]], combined_coverage: Fraction | None = None,
                    closed: bool = True, requests: Mapping[str, Fraction | None] | None = None) -> ContractCredit:
    """``targets``: the contract's TargetMonth figures (monitor.sla.monthly). The credit is final only for a
    ``closed`` month whose every scope has the minimum coverage, whether or not it earned a credit: no credit on
    too little evidence is not a finding that the objectives were met. ``requests``: the share of the month's
    customer requests whose first response and resolution met their targets, in percent (None: none judged),
    for the contract's request credit tiers: judged with the contract's fee (combined with its other
    objectives), or on a per-target basis as one more scope over all the fees."""
    lines: list[CreditLine] = []
    uncapped = money(Decimal(0), contract.currency)
    notes: list[str] = []
    withhold = contract.credit_low_coverage == "withhold"
    if contract.credit_basis == "contract":
        fees = contract.monthly_fee
        all_evidence = [e for t in targets for e in evidence.get(t.target, [])]
        new, pct = _judge("contract", contract, fees, combined_availability, combined_rollup, all_evidence,
                          requests or {})
        lines += new
        note = _low_coverage("contract", combined_coverage, contract.credit_min_coverage)
        if note:
            notes.append(note)
        uncapped = money(Decimal(0) if note and withhold else fees * pct / 100, contract.currency)
    else:
        fees = Decimal(0)
        for t in targets:
            fee = target_fees.get(t.target) or Decimal(0)
            fees += fee
            new, pct = _judge(t.target, contract, fee, t.availability.ratio, t.rollup, evidence.get(t.target, []))
            lines += new
            note = _low_coverage(t.target, t.coverage, contract.credit_min_coverage)
            if note:
                notes.append(note)
            uncapped += money(Decimal(0) if note and withhold else fee * pct / 100, contract.currency)
        new, pct = _judge("requests", contract, fees, None, None, [], requests or {})
        lines += new
        uncapped += money(fees * pct / 100, contract.currency)
    total = uncapped
    if contract.credit_cap is not None:
        total = min(total, money(fees * contract.credit_cap / 100, contract.currency))
    if not closed:
        notes.append("the month is still running: the credit is as of now")
    status = "final" if not notes else "withheld" if withhold and closed else "provisional"
    return ContractCredit(contract.credit_basis, contract.credit_combine, contract.currency, fees,
                          contract.credit_cap, lines, uncapped, total, status, notes)
