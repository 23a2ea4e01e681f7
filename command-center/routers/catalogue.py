"""Reference data: categories with time limits, departments, resource kinds, topics, levels."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cityops.command_center.dependencies import SystemDep
from cityops.command_center.models.reference import CataloguePublic
from cityops.command_center.scopes import LOGGED_IN

router = APIRouter(prefix="/catalogue", tags=["catalogue"],
                   dependencies=[LOGGED_IN])


@router.get("", response_model=CataloguePublic)
def get_catalogue(system: SystemDep) -> dict[str, Any]:
    """Everything a client needs to fill its pick lists."""
    c = system.catalogue
    return {
        "case_categories": [
            {"code": cat.code, "name": cat.name, "class": cat.case_class.value,
             "major_code": cat.major_code, "major_name": cat.major_name,
             "minor_code": cat.minor_code, "department": cat.department,
             "time_limits": {u.value: lim.describe() for u, lim in cat.time_limits.items()}}
            for cat in c.case_categories.values()
        ],
        "departments": [{"code": d.code, "name": d.name, "kind": d.kind}
                        for d in c.departments.values()],
        "resource_kinds": [{"code": k.code, "name": k.name, "mobile": k.mobile}
                           for k in c.resource_kinds.values()],
        "incident_categories": [
            {"code": ic.code, "name": ic.name,
             "types": [{"code": t, "name": n} for t, n in ic.types.items()]}
            for ic in c.incident_categories.values()
        ],
        "incident_levels": [{"code": lv.code, "rank": lv.rank, "name": lv.name}
                            for lv in c.incident_levels.values()],
        "hotline_topics": [
            {"code": t.code, "name": t.name, "department": t.department,
             "case_category": t.case_category, "emergency": t.emergency,
             "reply_limit": t.reply_limit.describe()}
            for t in c.hotline_topics.values()
        ],
    }
