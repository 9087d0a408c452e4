"""Chart facts the BP-* rules rely on (surgical chart changes made for RULES.md §4).

1. ``medications.classify``: a bisphosphonate coded only in the union sets (etidronate has no
   ingredient value set of its own) is named from its text or the value-set display of its code,
   so its renal cut-off and duplicate check use the right ingredient (D3).
2. ``clinical._concept_names``: Paget's disease of bone (ICD-10-CM M88.*, "osteitis deformans",
   "Paget's disease") becomes the concept ``paget-disease-of-bone`` (no value set exists in
   codes.json) so that BP-DRUG-HOLIDAY-REVIEW can leave Paget's courses alone.
"""

from __future__ import annotations

import pytest

from cds_service.chart import build_chart
from tests.factory import ICD10, NOW, condition, draft
from tests.rules._bp_helpers import ALENDRONATE_70, ETIDRONATE, pt


def _chart(*resources, drafts=()):
    return build_chart([pt(), *resources], NOW, hook="order-sign", draft_orders=list(drafts))


def test_etidronate_code_is_named_etidronate_oral() -> None:
    """D3: RxNorm 904535 (Etidronate Disodium 400 MG Oral Tablet) → agent etidronate, oral."""
    drug = _chart(drafts=[draft(ETIDRONATE)]).triggers[0].drug
    assert (drug.agent, drug.route, drug.by_text) == ("etidronate", "oral", False)
    # text-only etidronate keeps working, and coded alendronate is unchanged
    assert _chart(drafts=[draft(None, text="Didronel 200 mg")]).triggers[0].drug.agent == "etidronate"
    assert _chart(drafts=[draft(ALENDRONATE_70)]).triggers[0].drug.agent == "alendronate"


@pytest.mark.parametrize(
    "cond, is_paget",
    [
        (condition("M88.9", ICD10), True),
        (condition("M88.0", ICD10), True),
        (condition(None, text="Paget's disease of bone"), True),
        (condition(None, text="Osteitis deformans"), True),
        (condition(None, text="Paget disease of nipple"), False),
        (condition(None, text="Extramammary Paget's disease of vulva"), False),
        (condition("M81.0", ICD10), False),
    ],
)
def test_paget_disease_of_bone_concept(cond, is_paget) -> None:
    """Paget's disease of bone is recognised on the problem list; Paget's of the breast is not."""
    found = _chart(cond).conditions_in("paget-disease-of-bone")
    assert bool(found) is is_paget
