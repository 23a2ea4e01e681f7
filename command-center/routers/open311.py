"""Open311 GeoReport v2 under /open311/v2/: citizens' reporting apps list the services, read
their definitions, submit requests (with an API key) into the hotline and grid intake through
the same domain commands as the rest of the API, and follow them (public, no login).

Errors are answered the spec's way, in the requested format: a list of `code` and
`description`, with the matching HTTP status (400 bad input, 403 API key, 404 not found,
409 an idempotency key reused for a different request).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from cityops.command_center.dependencies import CommandCentreSystem
from cityops.command_center.drill_switch import requested_drill
from cityops.command_center.errors import parameter_problems, status_for
from cityops.command_center.models.open311 import (
    XML_TOO,
    DiscoveryPublic,
    PostedRequestPublic,
    RequestTokenPublic,
    ServiceDefinitionPublic,
    ServicePublic,
    ServiceRequestPublic,
)
from cityops.command_center.open311 import (
    DEFAULT_WINDOW_DAYS,
    MAX_ADDRESS,
    MAX_DESCRIPTION,
    MAX_IDENTIFIER,
    MAX_NAME,
    MAX_REQUESTS,
    OPEN311_USER_PREFIX,
    Format,
    Intake,
    Open311Error,
    RequestContext,
    Service,
    ServiceList,
    case_as_request,
    check_email,
    check_media_url,
    parse_coordinate,
    parse_w3c_datetime,
    render,
    ticket_as_request,
    ticket_text,
)
from cityops.command_center.query_checks import unknown_parameters
from cityops.command_center.time_travel import AsOfQuery, system_at, take_instant
from cityops.domain.actors import Actor, Role
from cityops.domain.application import CommandReceipt
from cityops.domain.catalogue import Urgency
from cityops.domain.commands import CommandContext
from cityops.domain.errors import DomainError, InvalidValue
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseSource
from cityops.domain.gridcases.commands import ReportCase
from cityops.domain.hotline.commands import ReceiveTicket
from cityops.domain.hotline.ticket import Channel, check_phone
from cityops.drills import DRILL_HEADER


class Open311Route(APIRoute):
    """Routes whose refused parameters (an `as_of` the city cannot be shown at) answer as
    the spec's error list in the requested format (400), not as this API's 422 body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, answering a refused parameter the spec's way."""
        handler = super().get_route_handler()

        async def open311_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                refusal = Open311Error(400, *parameter_problems(error))
                return _refusal(str(request.path_params.get("format", "xml")), refusal)

        return open311_handler


router = APIRouter(prefix="/open311", tags=["open311"], route_class=Open311Route)

INTAKE_COMMANDS = {Intake.GRID: "grid-case.report", Intake.HOTLINE: "ticket.receive"}
IDEMPOTENCY_HEADER = "Idempotency-Key"
ORIGIN_CACHE_SIZE = 100_000


class Open311State:
    """What the Open311 endpoints keep per app: the service list (built once from the
    catalogue) and which tickets came in through Open311 (a fact that never changes, so it
    is remembered once read)."""

    def __init__(self, system: CommandCentreSystem) -> None:
        self.system = system
        self.services = ServiceList(system.catalogue)
        self.context = RequestContext(services=self.services, city_map=system.city.map,
                                      city_name=system.city.info.name,
                                      zone=system.catalogue.calendar.timezone,
                                      sharing=system.sharing)
        self._origins: OrderedDict[UUID, bool] = OrderedDict()
        self._lock = threading.Lock()

    def ticket_from_open311(self, ticket_id: UUID) -> bool:
        """Whether the ticket was received from an Open311 client: only those are public.
        A ticket taken by phone holds what a caller told an operator, not a public report."""
        with self._lock:
            known = self._origins.get(ticket_id)
        if known is not None:
            return known
        hotline = self.system.hotline
        stored = hotline.recorder.select_events(ticket_id, limit=1)
        actor = getattr(hotline.mapper.to_domain_event(stored[0]), "actor", None) \
            if stored else None
        found = isinstance(actor, Actor) and actor.user_id.startswith(OPEN311_USER_PREFIX)
        if stored:
            with self._lock:
                self._origins[ticket_id] = found
                if len(self._origins) > ORIGIN_CACHE_SIZE:
                    self._origins.popitem(last=False)
        return found


_STATE_LOCK = threading.Lock()


def _state(request: Request) -> Open311State:
    system: CommandCentreSystem = request.app.state.system
    with _STATE_LOCK:
        state = getattr(request.app.state, "open311", None)
        if state is None or state.system is not system:
            state = Open311State(system)
            request.app.state.open311 = state
    return state


def _as_of(request: Request, as_of: AsOfQuery = None) -> datetime | None:
    """The instant of `as_of` (None: now), checked against the live city's span (Open311
    always answers about the live city, never a drill)."""
    return take_instant(request, _state(request).system, as_of)


AsOf = Annotated[datetime | None, Depends(_as_of)]


def _read_system(request: Request, instant: AsOf) -> CommandCentreSystem:
    """The live city, or as it stood at `as_of`."""
    return system_at(_state(request).system, instant)


ReadSystem = Annotated[CommandCentreSystem, Depends(_read_system)]


# --- answering ------------------------------------------------------------------------------


def _format(text: str) -> Format:
    try:
        return Format(text.lower())
    except ValueError:
        raise Open311Error(400, f"format {text!r} is not offered: use .xml or .json") \
            from None


def _answer(fmt: Format, root: str, item: str | None, body: Any,
            status: int = 200) -> Response:
    return Response(content=render(fmt, root, item, body), status_code=status,
                    media_type=fmt.media_type)


def _refusal(fmt_text: str, error: Exception) -> Response:
    """An error as the spec's list, in the requested format (XML, the spec's own, when the
    format itself was the problem)."""
    if isinstance(error, Open311Error):
        refusal = error
    elif isinstance(error, DomainError):
        status, _ = status_for(error)
        # The spec says 400 for a request it cannot take; 422 is this API's word for it.
        refusal = Open311Error(400 if status == 422 else status, str(error))
    else:
        raise error
    try:
        fmt = Format(fmt_text.lower())
    except ValueError:
        fmt = Format.XML
    return _answer(fmt, "errors", "error", refusal.as_list(), refusal.status)


def _spec_answer(fmt_text: str, produce: Callable[[Format], Response]) -> Response:
    try:
        return produce(_format(fmt_text))
    except (Open311Error, DomainError) as error:
        return _refusal(fmt_text, error)


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = [v for v in params.get(name, ()) if v.strip()]
    if len(values) > 1 and len(set(values)) > 1:
        raise Open311Error(400, f"{name} was given {len(values)} different values")
    return values[0].strip() if values else None


COMMON_PARAMETERS = frozenset({"jurisdiction_id", "api_key"})
"""What every GeoReport v2 GET may carry (clients often send their api_key everywhere)."""
READ_PARAMETERS = COMMON_PARAMETERS | {"as_of"}
"""What the GETs of services and requests carry: `as_of`, this API's time travel, too (an
extension parameter: a GeoReport v2 client that does not send it gets the spec's answer)."""
SEARCH_PARAMETERS = READ_PARAMETERS | {"service_request_id", "service_code", "start_date",
                                       "end_date", "status"}


def _query(request: Request, known: Collection[str] | None = None) -> dict[str, list[str]]:
    """The query's parameters; with `known`, any other is refused (400, naming it) rather
    than ignored as if it had been applied."""
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    if known is not None:
        unknown = unknown_parameters(params, known)
        if unknown:
            raise Open311Error(400, *(f"unknown parameter {name!r}; this request takes: "
                                      f"{', '.join(sorted(known))}" for name in unknown))
    return params


def _check_jurisdiction(system: CommandCentreSystem, params: Mapping[str, Sequence[str]]) -> None:
    """One jurisdiction is served: its id may be left out, and is checked when given."""
    given = _one(params, "jurisdiction_id")
    expected = system.settings.open311_jurisdiction_id
    if given is not None and given != expected:
        raise Open311Error(404, f"jurisdiction_id {given!r} was not found; this endpoint "
                           f"serves {expected!r}")


# --- discovery and services -----------------------------------------------------------------


@router.get("/discovery.{format}", response_model=DiscoveryPublic, responses=XML_TOO)
def discovery(format: str, request: Request) -> Response:
    """Service discovery: where the GeoReport v2 endpoint is and which formats it speaks."""
    def produce(fmt: Format) -> Response:
        _query(request, COMMON_PARAMETERS)
        base = str(request.base_url).rstrip("/")
        body = {
            "changeset": None,
            "contact": "The City Supervision and Command Centre",
            "key_service": "API keys are issued by the city's administrator "
                           "(cityops api-keys issue NAME).",
            "endpoints": [{
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": f"{base}/open311/v2",
                "changeset": None,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }],
        }
        return _answer(fmt, "discovery", None, body)
    return _spec_answer(format, produce)


@router.get("/v2/services.{format}", response_model=list[ServicePublic],
            responses=XML_TOO)
def list_services(format: str, request: Request, _: AsOf) -> Response:
    """GET Service List: the matters citizens may report, and where each goes (from the
    category catalogue: the same at every `as_of`)."""
    state = _state(request)

    def produce(fmt: Format) -> Response:
        _check_jurisdiction(state.system, _query(request, READ_PARAMETERS))
        return _answer(fmt, "services", "service", [s.as_dict() for s in state.services])
    return _spec_answer(format, produce)


@router.get("/v2/services/{service_code}.{format}", response_model=ServiceDefinitionPublic,
            responses=XML_TOO)
def service_definition(service_code: str, format: str, request: Request, _: AsOf) -> Response:
    """GET Service Definition: the questions a request of this service answers (from the
    category catalogue: the same at every `as_of`)."""
    state = _state(request)

    def produce(fmt: Format) -> Response:
        _check_jurisdiction(state.system, _query(request, READ_PARAMETERS))
        service = state.services.service(service_code)
        return _answer(fmt, "service_definition", None, service.definition())
    return _spec_answer(format, produce)


# --- POST requests --------------------------------------------------------------------------


async def _posted_fields(request: Request) -> dict[str, list[str]]:
    """The fields of a POST: form-encoded as the spec says (multipart accepted), or a JSON
    object; the query string counts too (some clients put api_key there). `attribute` of a
    JSON body is an object of code -> value or list of values."""
    fields = _query(request)
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            body = json.loads(await request.body() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Open311Error(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise Open311Error(400, "a JSON body must be an object of the request's fields")
        for key, value in body.items():
            if key == "attribute" and isinstance(value, dict):
                for code, answer in value.items():
                    answers = answer if isinstance(answer, list) else [answer]
                    fields[f"attribute[{code}]"] = ["" if a is None else str(a)
                                                    for a in answers]
            elif isinstance(value, list | dict):
                raise Open311Error(400, f"{key} must be a single value")
            elif value is not None:
                fields[key] = [str(value).lower() if isinstance(value, bool) else str(value)]
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        form = await request.form()
        for key, value in form.multi_items():
            if not isinstance(value, str):
                raise Open311Error(400, f"{key} must be a text field, not a file: send "
                                   "media as a link in media_url")
            fields.setdefault(key, []).append(value)
    else:
        raise Open311Error(400, f"send the request form-encoded "
                           f"(application/x-www-form-urlencoded) or as JSON, not {content_type}")
    return fields


def _attributes(fields: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """attribute[code]=value and attribute[code][]=value (a multivaluelist), by code."""
    answers: dict[str, list[str]] = {}
    for key, values in fields.items():
        if not key.startswith("attribute["):
            continue
        inner = key[len("attribute["):]
        code, bracket, rest = inner.partition("]")
        if not bracket or not code or rest not in ("", "[]"):
            raise Open311Error(400, f"{key!r} is not attribute[code] or attribute[code][]")
        answers.setdefault(code, []).extend(values)
    return answers


@dataclass(frozen=True)
class Submission:
    """A POSTed service request, checked field by field."""

    service: Service
    location: GeoPoint | None
    address_string: str | None
    answers: dict[str, Any]
    description: str
    caller_name: str | None
    phone: str | None
    email: str | None
    device_id: str | None
    account_id: str | None
    media_url: str | None


def _text(fields: Mapping[str, Sequence[str]], name: str, limit: int,
          problems: list[str]) -> str | None:
    value = _one(fields, name)
    if value is not None and len(value) > limit:
        problems.append(f"{name} is longer than {limit} characters")
    return value


def _submission(state: Open311State, fields: Mapping[str, Sequence[str]]) -> Submission:
    """Every field checked; all the problems are answered at once."""
    service = state.services.service(_one(fields, "service_code"))
    problems: list[str] = []
    location: GeoPoint | None = None
    lat_text, long_text = _one(fields, "lat"), _one(fields, "long")
    if (lat_text is None) != (long_text is None):
        problems.append("lat and long go together: give both or neither")
    elif lat_text is not None and long_text is not None:
        try:
            location = GeoPoint(lon=parse_coordinate(long_text, "long", 180),
                                lat=parse_coordinate(lat_text, "lat", 90))
        except (ValueError, InvalidValue) as error:
            problems.append(str(error))
    address_id = _text(fields, "address_id", MAX_IDENTIFIER, problems)
    if address_id is not None and location is None and not problems:
        try:
            # The city's addressing system is its unit grid: an address id is a cell code.
            location = state.system.city.map.cell(address_id).centre
        except InvalidValue:
            problems.append(f"address_id {address_id!r} is not a unit grid cell code of "
                            "this city (such as D03-S03-C03-0034)")
    address_string = _text(fields, "address_string", MAX_ADDRESS, problems)
    if address_string is not None and ("\n" in address_string or "\r" in address_string):
        problems.append("address_string is one line of text")
    if lat_text is None and address_id is None and address_string is None:
        problems.append("a location is required: lat and long, address_string or address_id")
    elif service.intake is Intake.GRID and location is None and not problems:
        problems.append(f"service {service.code} is a problem at a place on the map: give "
                        "lat and long, or address_id (a unit grid cell code); an address "
                        "string alone cannot be placed")
    try:
        answers = service.attribute_answers(_attributes(fields))
    except Open311Error as error:
        problems.extend(error.descriptions)
        answers = {}
    description = _text(fields, "description", MAX_DESCRIPTION, problems) or service.name
    first, last = _one(fields, "first_name"), _one(fields, "last_name")
    caller_name = " ".join(n for n in (first, last) if n) or None
    if caller_name is not None and len(caller_name) > MAX_NAME:
        problems.append(f"first_name and last_name together are longer than {MAX_NAME} "
                        "characters")
    phone = _one(fields, "phone")
    try:
        phone = check_phone(phone)
    except InvalidValue as error:
        problems.append(str(error))
    email = _one(fields, "email")
    media_url = _one(fields, "media_url")
    for name, check in (("email", check_email), ("media_url", check_media_url)):
        value = email if name == "email" else media_url
        if value is not None:
            try:
                check(value)
            except ValueError as error:
                problems.append(str(error))
    device_id = _text(fields, "device_id", MAX_IDENTIFIER, problems)
    account_id = _text(fields, "account_id", MAX_IDENTIFIER, problems)
    if service.intake is Intake.HOTLINE:
        full = ticket_text(description, address_string, media_url)
        if len(full) > MAX_DESCRIPTION and len(description) <= MAX_DESCRIPTION:
            problems.append(f"description with the address and media_url added is longer "
                            f"than {MAX_DESCRIPTION} characters")
    if problems:
        raise Open311Error(400, *problems)
    return Submission(service=service, location=location, address_string=address_string,
                      answers=answers, description=description, caller_name=caller_name,
                      phone=phone, email=email, device_id=device_id, account_id=account_id,
                      media_url=media_url)


def _command_id(client_key_id: str, submission: Submission,
                idempotency_key: str | None, day: str) -> str:
    """The intake command's id, so that a client's retry never files the request twice.

    With an `Idempotency-Key` header, that key (per API key). Without one, a digest of
    everything the request says (service, place, answers, text, who and which device or
    account) and the day it arrived: a client that resends the same request after a lost
    answer gets the same request back; the same person reporting the same thing again on
    another day files a new one (and the duplicate finder proposes it to the centre)."""
    if idempotency_key is not None:
        return f"{OPEN311_USER_PREFIX}{client_key_id}:key:{idempotency_key}"
    facts = {
        "service": submission.service.code,
        "location": [submission.location.lon, submission.location.lat]
        if submission.location else None,
        "address": submission.address_string, "answers": submission.answers,
        "description": submission.description, "name": submission.caller_name,
        "phone": submission.phone, "email": submission.email,
        "device": submission.device_id, "account": submission.account_id,
        "media": submission.media_url, "day": day,
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
    return f"{OPEN311_USER_PREFIX}{client_key_id}:{digest}"


def _file(state: Open311State, submission: Submission, actor: Actor,
          command_id: str) -> tuple[UUID, bool]:
    """Run the intake command; returns the request's id and whether it was new."""
    system = state.system
    service = submission.service
    context = CommandContext(actor=actor, command_id=command_id)
    if service.intake is Intake.GRID:
        outcome = system.commands.handle(ReportCase(
            source=CaseSource.HOTLINE, category=service.code,
            description=submission.description,
            location=submission.location,  # type: ignore[arg-type]  # checked: grid
            urgency=submission.answers.get("urgency", Urgency.NORMAL.value),
            photos=(submission.media_url,) if submission.media_url else ()), context)
        return outcome.subject, not outcome.repeated
    outcome = system.commands.handle(ReceiveTicket(
        # Apps on a phone say which device they run on; the rest are web forms.
        channel=Channel.MOBILE_APP if submission.device_id else Channel.WEB,
        ticket_type=submission.answers["request_type"], topic=service.code,
        description=ticket_text(submission.description, submission.address_string,
                                submission.media_url),
        caller_name=submission.caller_name, caller_phone=submission.phone,
        location=submission.location), context)
    return outcome.subject, not outcome.repeated


@router.post("/v2/requests.{format}", status_code=201,
             response_model=list[PostedRequestPublic], responses={
                 200: {"description": "A retry of a request filed before: the same answer",
                       "model": list[PostedRequestPublic], **XML_TOO[200]},
                 201: XML_TOO[200]})
async def post_request(format: str, request: Request) -> Response:
    """POST Service Request (api_key required): the request becomes a grid case or a hotline
    ticket, acted by `open311:<client name>`; a retry of the same request files nothing
    new. Answers its id, the city's notice, the client's account_id and a token."""
    state = _state(request)
    try:
        fmt = _format(format)
        if requested_drill(request) is not None:
            # Open311 serves the live city only: filed anyway, a drill participant's request
            # would become live data.
            raise Open311Error(400, "Open311 files requests into the live city only; a "
                               f"drill takes none: send it without {DRILL_HEADER} and the "
                               "drill cookie")
        fields = await _posted_fields(request)
        key = _one(fields, "api_key")
        if key is None:
            raise Open311Error(403, "api_key was not provided")
        client = await run_in_threadpool(state.system.accounts.api_client_for_key, key)
        if client is None:
            raise Open311Error(403, "api_key is invalid or revoked")
        _check_jurisdiction(state.system, fields)
        idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDENTIFIER:
            raise Open311Error(400, f"{IDEMPOTENCY_HEADER} must be 1-{MAX_IDENTIFIER} "
                               "characters")
        submission = _submission(state, fields)
        actor = Actor(user_id=f"{OPEN311_USER_PREFIX}{client.name}", role=Role.SYSTEM)
        day = state.system.grid_cases.clock().astimezone(state.context.zone).date()
        command_id = _command_id(client.key_id, submission, idempotency_key, day.isoformat())
        request_id, new = await run_in_threadpool(_file, state, submission, actor, command_id)
    except (Open311Error, DomainError) as error:
        return _refusal(format, error)
    body = [{"service_request_id": str(request_id),
             "service_notice": submission.service.notice,
             "account_id": submission.account_id,
             "token": str(CommandReceipt.create_id(command_id))}]
    return _answer(fmt, "service_requests", "request", body, 201 if new else 200)


# --- tokens ---------------------------------------------------------------------------------


@router.get("/v2/tokens/{token}.{format}", response_model=list[RequestTokenPublic],
            responses=XML_TOO)
def request_id_for_token(token: str, format: str, request: Request,
                         system: ReadSystem) -> Response:
    """GET request_id from a token: the request a POST answered this token for. It is read
    from the receipt stored with the request itself, so it holds for ever, in any process
    (with `as_of`, only a request posted by then)."""
    state = _state(request)

    def produce(fmt: Format) -> Response:
        _check_jurisdiction(state.system, _query(request, READ_PARAMETERS))
        try:
            receipt_id = UUID(token)
        except ValueError:
            raise Open311Error(404, f"token {token!r} was not found") from None
        for application, then in ((state.system.hotline, system.hotline),
                                  (state.system.grid_cases, system.grid_cases)):
            try:
                receipt: object = application.repository.get(receipt_id, version=1)
            except AggregateNotFoundError:
                continue
            # At `as_of`, the request it names must have been filed by then (a receipt is
            # stamped by the wall clock, the request by the city's).
            if isinstance(receipt, CommandReceipt) \
                    and receipt.command_id.startswith(OPEN311_USER_PREFIX) \
                    and receipt.command in INTAKE_COMMANDS.values() \
                    and then.exists(receipt.aggregate_id):
                return _answer(fmt, "service_requests", "request",
                               [{"service_request_id": str(receipt.aggregate_id),
                                 "token": token}])
        raise Open311Error(404, f"token {token!r} was not found")
    return _spec_answer(format, produce)


# --- GET requests ---------------------------------------------------------------------------


def _request_by_id(state: Open311State, system: CommandCentreSystem,
                   request_id: UUID) -> dict[str, Any] | None:
    """One request as recorded now (the write side: a request just POSTed is there at
    once) or, from a past `system`, as it stood then; None when there is no such public
    request."""
    services = state.services.services
    if system.grid_cases.exists(request_id):
        case = system.grid_cases.case(request_id)
        if case.category not in services:
            return None
        return case_as_request(case.summary(), case.created_on, case.modified_on,
                               state.context)
    if system.hotline.exists(request_id) and state.ticket_from_open311(request_id):
        ticket = system.hotline.ticket(request_id)
        if ticket.topic not in services:
            return None
        return ticket_as_request(ticket.summary(), ticket.created_on, ticket.modified_on,
                                 state.context)
    return None


def _parse_id(text: str) -> UUID:
    try:
        return UUID(text.strip())
    except ValueError:
        raise Open311Error(404, f"service_request_id {text!r} was not found") from None


@router.get("/v2/requests/{service_request_id}.{format}",
            response_model=list[ServiceRequestPublic], responses=XML_TOO)
def get_request(service_request_id: str, format: str, request: Request,
                system: ReadSystem) -> Response:
    """GET Service Request: one request's status and details (never who reported it), as
    it stood at `as_of` if given."""
    state = _state(request)

    def produce(fmt: Format) -> Response:
        _check_jurisdiction(state.system, _query(request, READ_PARAMETERS))
        found = _request_by_id(state, system, _parse_id(service_request_id))
        if found is None:
            raise Open311Error(404, f"service_request_id {service_request_id!r} was not "
                               "found")
        return _answer(fmt, "service_requests", "request", [found])
    return _spec_answer(format, produce)


def _codes(text: str | None, services: ServiceList) -> list[Service] | None:
    if text is None:
        return None
    return [services.service(code) for code in text.split(",") if code.strip()]


def _statuses(text: str | None) -> set[bool] | None:
    """open / closed (comma list) as the set of `is_open` values wanted."""
    if text is None:
        return None
    wanted = {s.strip().lower() for s in text.split(",") if s.strip()}
    unknown = wanted - {"open", "closed"}
    if unknown:
        raise Open311Error(400, f"status must be open or closed (comma list), not "
                           f"{', '.join(sorted(unknown))}")
    return {s == "open" for s in wanted}


def _window(params: Mapping[str, Sequence[str]], state: Open311State,
            now: datetime) -> tuple[datetime, datetime]:
    """start_date..end_date: the last 90 days by default; one end alone opens 90 days from
    it; longer than 90 days or backwards is refused."""
    zone = state.context.zone
    bounds: list[datetime | None] = []
    for name in ("start_date", "end_date"):
        text = _one(params, name)
        try:
            bounds.append(parse_w3c_datetime(text, name, zone) if text is not None else None)
        except ValueError as error:
            raise Open311Error(400, str(error)) from None
    start, end = bounds
    span = timedelta(days=DEFAULT_WINDOW_DAYS)
    if start is None and end is None:
        end = now
        start = now - span
    elif start is None:
        assert end is not None
        start = end - span
    elif end is None:
        end = start + span
    assert start is not None and end is not None
    if start > end:
        raise Open311Error(400, "start_date is after end_date")
    if end - start > span:
        raise Open311Error(400, f"start_date to end_date spans more than "
                           f"{DEFAULT_WINDOW_DAYS} days")
    return start, end


def _rows(system: CommandCentreSystem, table: str, column: str, codes: Sequence[str],
          start: datetime, end: datetime, is_open: set[bool] | None, limit: int,
          offset: int) -> list[tuple[dict[str, Any], str, str]]:
    """Read-model rows (document, created, updated) of these codes in the window, newest
    first."""
    from cityops.projections.tables import utc_text

    if not codes or is_open == set():
        return []
    where = [f"{column} IN ({', '.join(['%s'] * len(codes))})",
             "created_at >= %s", "created_at <= %s"]
    params: list[Any] = [*codes, utc_text(start), utc_text(end)]
    if is_open is not None and len(is_open) == 1:
        where.append("is_open = %s")
        params.append(next(iter(is_open)))
    sql = (f"SELECT doc, created_at, updated_at FROM {table} WHERE {' AND '.join(where)} "
           "ORDER BY created_at DESC, id LIMIT %s OFFSET %s")
    with system.read_models.store.transaction() as txn:
        txn.execute(sql, [*params, limit, offset])
        rows = txn.fetchall()
    return [(r[0] if isinstance(r[0], dict) else json.loads(r[0]), r[1], r[2]) for r in rows]


def _search(state: Open311State, system: CommandCentreSystem,
            params: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    ids = _one(params, "service_request_id")
    if ids is not None:
        # The spec: a list of ids overrides every other argument.
        found = [_request_by_id(state, system, _parse_id(i)) for i in ids.split(",") if i.strip()]
        return [r for r in found if r is not None][:MAX_REQUESTS]
    services = _codes(_one(params, "service_code"), state.services)
    wanted = services if services is not None else list(state.services)
    is_open = _statuses(_one(params, "status"))
    start, end = _window(params, state, system.grid_cases.clock())
    context = state.context
    results: list[tuple[str, dict[str, Any]]] = []
    case_codes = [s.code for s in wanted if s.intake is Intake.GRID]
    for doc, created, updated in _rows(system, "rm_grid_cases", "category", case_codes,
                                       start, end, is_open, MAX_REQUESTS, 0):
        results.append((created, case_as_request(doc, created, updated, context)))
    topic_codes = [s.code for s in wanted if s.intake is Intake.HOTLINE]
    offset, public = 0, 0
    while public < MAX_REQUESTS:
        # Only tickets from Open311 clients are public: read on until enough are found.
        rows = _rows(system, "rm_tickets", "topic", topic_codes, start, end, is_open,
                     MAX_REQUESTS, offset)
        for doc, created, updated in rows:
            if state.ticket_from_open311(UUID(doc["id"])):
                results.append((created, ticket_as_request(doc, created, updated, context)))
                public += 1
        if len(rows) < MAX_REQUESTS:
            break
        offset += MAX_REQUESTS
    results.sort(key=lambda r: (r[0], r[1]["service_request_id"]), reverse=True)
    return [r for _, r in results[:MAX_REQUESTS]]


@router.get("/v2/requests.{format}", response_model=list[ServiceRequestPublic],
            responses=XML_TOO)
def list_requests(format: str, request: Request, system: ReadSystem) -> Response:
    """GET Service Requests: by ids (comma list), or by service_code, start_date, end_date
    (last 90 days by default, at most 90) and status (open, closed); newest first, at most
    1000. The read models answer, so a request posted a moment ago may take a moment. With
    `as_of`, the requests as they stood then (the default window ends at that instant)."""
    state = _state(request)

    def produce(fmt: Format) -> Response:
        params = _query(request, SEARCH_PARAMETERS)
        _check_jurisdiction(state.system, params)
        return _answer(fmt, "service_requests", "request", _search(state, system, params))
    return _spec_answer(format, produce)
