"""Answers about the system itself: the catalogue of pick lists, the logged-in user and
their login token, and stored photos."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from cityops.command_center.models.common import Public, Timestamp
from cityops.domain.catalogue import CaseClass, Urgency


class CaseCategoryPublic(Public):
    """A grid-case category, its major/minor class codes and its time limits."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    code: str
    name: str
    case_class: CaseClass = Field(alias="class")
    major_code: str
    major_name: str
    minor_code: str
    department: str = Field(description="The department it is dispatched to by default")
    time_limits: dict[Urgency, str] = Field(description="By urgency, e.g. `4 hours`, "
                                            "`2 working days`")


class DepartmentPublic(Public):
    code: str
    name: str
    kind: str


class ResourceKindPublic(Public):
    code: str
    name: str
    mobile: bool


class IncidentTypePublic(Public):
    code: str
    name: str


class IncidentCategoryPublic(Public):
    code: str
    name: str
    types: list[IncidentTypePublic]


class IncidentLevelPublic(Public):
    code: str = Field(description="I to IV")
    rank: int
    name: str


class HotlineTopicPublic(Public):
    code: str
    name: str
    department: str
    case_category: str | None = Field(description="The grid-case category it becomes")
    emergency: bool
    reply_limit: str


class CataloguePublic(Public):
    """Everything a client needs to fill its pick lists."""

    case_categories: list[CaseCategoryPublic]
    departments: list[DepartmentPublic]
    resource_kinds: list[ResourceKindPublic]
    incident_categories: list[IncidentCategoryPublic]
    incident_levels: list[IncidentLevelPublic]
    hotline_topics: list[HotlineTopicPublic]


class UserPublic(Public):
    """A user: username, role, department and display name."""

    username: str
    role: str
    department: str | None
    display_name: str


class TokenPublic(Public):
    """A login: the bearer token, until when it is valid, for whom, and their home page."""

    access_token: str = Field(description="Send as `Authorization: Bearer <token>`")
    token_type: str = Field(examples=["bearer"])
    expires_at: Timestamp
    user: UserPublic
    home_page: str = Field(description="The page for the user's role, e.g. /dashboard")


class PhotoPublic(Public):
    """A stored photo: its reference, type, size, pixels, who uploaded it and when."""

    photo: str = Field(description="The reference to send in commands: photo:<sha256>")
    sha256: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    uploaded_by: str
    uploaded_role: str
    uploaded_at: Timestamp
    url: str


class PhotoUploadPublic(PhotoPublic):
    """An uploaded photo's record; `created` is false when it was stored before."""

    created: bool
