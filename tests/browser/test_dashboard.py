"""The dispatcher's dashboard in a real browser, as the people of the command centre use it:
a case goes from the inspector's report through the dispatcher, the department and the
inspector's verification to closing, while a leader's dashboard follows every step live; two
dispatchers on the same case see each other and the slower one gets a conflict message; a
leader sees no action buttons; a wrong password is refused with a message. No page ever
sends a request outside the app (checked by the `screens` fixture after each test)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# The fixtures' types (Server, Screens, Screen) live in this folder's conftest, which is not
# importable as a module under --import-mode=importlib: they are spelled Any here.
Server = Any
Screens = Any
Screen = Any


def open_case(screen: Screen, case_id: str, queue: str | None = None) -> Any:
    """Click the case's row in the queue (choosing a queue filter first) and return the
    detail pane, once it shows that case."""
    if queue is not None:
        screen.testid("case-filter").select_option(queue)
    row = screen.page.locator(f"[data-testid=case-row][data-id='{case_id}']")
    row.click()
    detail = screen.page.locator(f"[data-testid=detail][data-id='{case_id}']")
    expect(detail).to_be_visible()
    return detail


def act(screen: Screen, action: str, fields: dict[str, str] | None = None) -> None:
    """Use an action of the open item and wait for its result to be shown as done."""
    screen.testid(f"action-{action}").click()
    if fields is not None:
        for name, value in fields.items():
            field = screen.page.locator(f"[data-testid=form-{action}] [data-testid=field-{name}]")
            if field.evaluate("e => e.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
        screen.testid(f"confirm-{action}").click()
    expect(screen.testid("action-status")).to_have_attribute("data-state", "ok")


def row_of(screen: Screen, case_id: str) -> Any:
    return screen.page.locator(f"[data-testid=case-row][data-id='{case_id}']")


def test_a_case_from_report_to_closing_while_a_leader_watches_live(
        server: Server, screens: Screens, screenshots: Path) -> None:
    leader = screens.login("leader-l")
    leader.testid("case-filter").select_option("all-open")
    dispatcher = screens.login("disp-a")

    case = server.report_case("Rubble dumped beside the bus stop (browser scenario)")
    case_id = case["id"]
    # Both dashboards learn of the report through the live push, not by reloading.
    expect(row_of(leader, case_id)).to_have_attribute("data-status", "reported")
    expect(leader.page.locator(f"[data-testid=ticker-item][data-id='{case_id}']").first) \
        .to_be_visible()

    detail = open_case(dispatcher, case_id, queue="to-register")
    act(dispatcher, "register")
    expect(detail.get_by_test_id("detail-status")).to_have_text("registered")
    expect(row_of(leader, case_id)).to_have_attribute("data-status", "registered")

    open_case(dispatcher, case_id, queue="to-dispatch")
    act(dispatcher, "dispatch", {"department": "urban-management",
                                 "instructions": "Clear it before the morning rush"})
    expect(dispatcher.testid("detail-status")).to_have_text("dispatched")
    expect(row_of(leader, case_id)).to_have_attribute("data-status", "dispatched")
    expect(dispatcher.page.locator("[data-testid=timeline-entry][data-event=Dispatched]")) \
        .to_be_visible()
    dispatcher.page.screenshot(path=screenshots / "dashboard-dispatcher.png")

    department = screens.login("dept-um")
    open_case(department, case_id)
    expect(department.testid("action-register")).to_have_count(0)
    department.page.screenshot(path=screenshots / "dashboard-department.png")
    act(department, "handle", {"result": "Rubble removed, area swept"})
    expect(department.testid("detail-status")).to_have_text("handled")
    expect(row_of(leader, case_id)).to_have_attribute("data-status", "handled")

    # The inspector of the cell verifies on site, on the field page's task list.
    inspector = screens.login(server.inspector, path="/field")
    inspector.testid("tab-tasks").click()
    task = inspector.page.locator(f"[data-testid=task][data-id='{case_id}']")
    task.get_by_test_id("task-verify-open").click()
    task.get_by_test_id("verify-fixed").check()
    task.get_by_test_id("verify-note").fill("Checked on site: clean")
    inspector.page.screenshot(path=screenshots / "field-verify.png")
    task.get_by_test_id("verify-submit").click()
    # The field page drops the task from its list once it is done; the leader's dashboard
    # shows the outcome.
    expect(row_of(leader, case_id)).to_have_attribute("data-status", "verified")
    expect(task).to_have_count(0)

    open_case(dispatcher, case_id, queue="to-close")
    act(dispatcher, "close")
    expect(dispatcher.testid("detail-status")).to_have_text("closed")
    # A closed case leaves the leader's open queue.
    expect(row_of(leader, case_id)).to_have_count(0)
    events = leader.page.locator(f"[data-testid=ticker-item][data-id='{case_id}']")
    expect(events.filter(has_text="Closed")).to_have_count(1)
    leader.page.screenshot(path=screenshots / "dashboard-leader.png")


def test_two_dispatchers_on_one_case_see_each_other_and_the_slower_gets_a_conflict(
        server: Server, screens: Screens, screenshots: Path) -> None:
    first = screens.login("disp-a")
    second = screens.login("disp-b")
    case_id = server.report_case("Illegal dumping behind the market (conflict)")["id"]

    open_case(first, case_id, queue="to-register")
    open_case(second, case_id, queue="to-register")
    expect(first.testid("presence")).to_contain_text("disp-b")
    expect(second.testid("presence")).to_contain_text("disp-a")

    # The second dispatcher starts rejecting what they see (version 1)...
    second.testid("action-reject").click()
    second.page.locator("[data-testid=form-reject] [data-testid=field-reason]") \
        .select_option("not-reproducible")
    # ...while the first registers it.
    act(first, "register")
    expect(second.testid("stale-banner")).to_be_visible()
    second.testid("confirm-reject").click()
    status = second.testid("action-status")
    expect(status).to_have_attribute("data-state", "conflict")
    expect(status).to_contain_text("disp-a")  # the message says who changed it first
    second.page.screenshot(path=screenshots / "dashboard-conflict.png")
    # Nothing was overwritten: the case is registered, as the first dispatcher left it.
    second.testid("stale-reload").click()
    expect(second.testid("detail-status")).to_have_text("registered")


def test_a_leader_reads_everything_and_sees_no_action_buttons(
        server: Server, screens: Screens, screenshots: Path) -> None:
    case_id = server.report_case("Overflowing trash bin at the school gate (leader)")["id"]
    leader = screens.login("leader-l")
    open_case(leader, case_id, queue="to-register")
    expect(leader.testid("detail-facts")).to_contain_text("reported")
    expect(leader.page.locator("[data-testid=detail-actions] button")).to_have_count(0)
    expect(leader.testid("case-select")).to_have_count(0)
    leader.testid("tab-figures").click()
    expect(leader.page.locator("[data-testid=key-figures] [data-figure=green]")) \
        .to_have_text(re.compile(r"^\d+$"))
    leader.page.screenshot(path=screenshots / "dashboard-figures.png")


def test_bulk_register_of_a_selection(server: Server, screens: Screens) -> None:
    ids = [server.report_case(f"Street vendor blocking the pavement #{n} (bulk)")["id"]
           for n in range(3)]
    dispatcher = screens.login("disp-a")
    dispatcher.testid("case-filter").select_option("to-register")
    for case_id in ids[:2]:
        row_of(dispatcher, case_id).get_by_test_id("case-select").check()
    expect(dispatcher.testid("bulk-count")).to_have_text("2 selected")
    dispatcher.testid("bulk-register").click()
    expect(dispatcher.testid("bulk-outcome")).to_have_text("Registered 2 cases")
    assert [url for url in dispatcher.requests if url.endswith("/grid-cases/bulk/register")], \
        "the selection went one case at a time, not through the bulk route"
    for case_id in ids[:2]:
        expect(row_of(dispatcher, case_id)).to_have_count(0)
    expect(row_of(dispatcher, ids[2])).to_have_attribute("data-status", "reported")


def test_a_wrong_password_is_refused_with_a_message(
        server: Server, screens: Screens, screenshots: Path) -> None:
    screen = screens.blank()
    screen.page.goto(f"{server.base_url}/login")
    screen.testid("login-username").fill("disp-a")
    screen.testid("login-password").fill("not-the-password")
    screen.testid("login-submit").click()
    message = screen.testid("login-error")
    expect(message).to_have_attribute("data-state", "error")
    expect(message).to_contain_text("password")  # the API's own message, shown as it is
    assert screen.page.url.endswith("/login")
    screen.page.screenshot(path=screenshots / "login-refused.png")


def test_the_nearest_available_resource_is_dispatched_to_an_incident_in_one_click(
        server: Server, screens: Screens, screenshots: Path) -> None:
    lon, lat = 118.801, 32.051
    resource = server.post("disp-a", "/resources", {
        "kind": "ambulance", "name": "Ambulance 9 (browser test)", "call_sign": "AMB-BT-9",
        "department": "health",
        "home_base": {"type": "Point", "coordinates": [lon + 0.002, lat]},
    })
    incident = server.post("disp-a", "/incidents", {
        "category": "accident-disaster", "incident_type": "traffic-accident",
        "title": "Two cars collided at the crossing (browser test)",
        "location": {"type": "Point", "coordinates": [lon, lat]},
    })
    server.post("disp-a", f"/incidents/{incident['id']}/verify", {})
    server.post("disp-a", f"/incidents/{incident['id']}/respond", {"level": "IV"})

    dispatcher = screens.login("disp-a")
    dispatcher.testid("tab-incidents").click()
    card = dispatcher.page.locator(f"[data-testid=incident-card][data-id='{incident['id']}']")
    expect(card).to_contain_text("responding")
    card.click()
    dispatcher.testid("tab-resources").click()
    nearest = dispatcher.page.locator(
        f"[data-testid=nearest-resource][data-id='{resource['id']}']")
    expect(nearest).to_contain_text("AMB-BT-9")
    nearest.get_by_test_id("dispatch-resource").click()
    expect(dispatcher.testid("resource-outcome")).to_have_attribute("data-state", "ok")
    # It is no longer available, and the incident shows it assigned.
    expect(nearest).to_have_count(0)
    assigned = dispatcher.page.locator(
        f"[data-testid=assigned-resource][data-id='{resource['id']}']")
    expect(assigned).to_contain_text("dispatched")
    expect(dispatcher.page.locator("[data-testid=resource-count][data-status=dispatched]")) \
        .to_have_text("1 dispatched")
    dispatcher.page.screenshot(path=screenshots / "dashboard-resources.png")


def test_the_commander_waives_an_open_task_and_then_the_incident_closes(
        server: Server, screens: Screens, screenshots: Path) -> None:
    incident = server.post("disp-a", "/incidents", {
        "category": "accident-disaster", "incident_type": "traffic-accident",
        "title": "Lorry overturned on the ring road (browser test)",
        "location": {"type": "Point", "coordinates": [118.802, 32.052]},
    })
    path = f"/incidents/{incident['id']}"
    server.post("disp-a", f"{path}/verify", {})
    server.post("disp-a", f"{path}/respond", {"level": "IV"})
    server.post("disp-a", f"{path}/tasks", {"department": "traffic-police",
                                            "description": "Divert the traffic",
                                            "allowance_minutes": 30})
    server.post("disp-a", f"{path}/contain", {})

    dispatcher = screens.login("disp-a")
    dispatcher.testid("tab-incidents").click()
    dispatcher.page.locator(f"[data-testid=incident-card][data-id='{incident['id']}']").click()
    expect(dispatcher.testid("action-close-incident")).to_have_text("Close (1 open task)")
    # Closing is refused with the server's own words, naming the open task.
    dispatcher.testid("action-close-incident").click()
    status = dispatcher.testid("action-status")
    expect(status).to_have_attribute("data-state", "conflict")  # a 409
    expect(status).to_contain_text("1 task is still open")
    expect(status).to_contain_text("Divert the traffic")

    act(dispatcher, "waive-task", {"reason": "Traffic police already on the ring road"})
    task = dispatcher.page.locator("[data-testid=plan-task][data-status=waived]")
    expect(task).to_contain_text("Traffic police already on the ring road")
    act(dispatcher, "close-incident")
    expect(dispatcher.testid("detail-status")).to_have_text("closed")
    dispatcher.page.screenshot(path=screenshots / "dashboard-task-waived.png")


def test_an_inspector_who_logs_in_from_the_start_page_lands_on_the_field_page(
        server: Server, screens: Screens) -> None:
    """Issue 9, item 13: the start page leads to the dashboard, but an inspector's screen is
    the field page."""
    screen = screens.blank()
    screen.page.goto(f"{server.base_url}/")
    screen.page.wait_for_url("**/login**")
    screen.testid("login-username").fill(server.inspector)
    screen.testid("login-password").fill(server.password)
    screen.testid("login-submit").click()
    screen.page.wait_for_url(re.compile(r".*/field$"))


def test_the_search_box_finds_a_case_by_words_and_street_and_places_the_map(
        server: Server, screens: Screens, demo_city: Any, screenshots: Path) -> None:
    """Issue 9, item 12: "the pipe on <street>" without coordinates: the map moves to the
    street and the case is listed; choosing it opens it."""
    from cityops.domain.geometry import GeoPoint

    word = f"pipe{uuid4().hex[:6]}"
    case = server.report_case(f"Burst {word} flooding the pavement")
    lon, lat = case["location"]["coordinates"]
    street = demo_city.map.locate(GeoPoint(lon, lat))
    stem = street.street_name.removesuffix(" Street")
    dispatcher = screens.login("disp-a")
    dispatcher.testid("search-input").fill(f"the {word} on {stem}")
    hit = dispatcher.page.locator(f"[data-testid=search-hit][data-id='{case['id']}']")
    expect(hit).to_be_visible()
    expect(dispatcher.page.locator("[data-testid=search-hit]")).to_have_count(1)
    expect(dispatcher.testid("map")).to_have_attribute("data-place", street.street_code)
    dispatcher.page.screenshot(path=screenshots / "search.png")
    hit.click()
    expect(dispatcher.page.locator(f"[data-testid=detail][data-id='{case['id']}']")
           ).to_be_visible()
    # A place by name alone fits the map to it.
    dispatcher.testid("search-input").fill("Qingshan Reservoir")
    place = dispatcher.page.locator("[data-testid=search-place]").first
    expect(place).to_contain_text("Qingshan Reservoir")
    place.click()
    expect(dispatcher.testid("map")).to_have_attribute("data-place", "Qingshan Reservoir")


def test_a_department_asks_for_a_suspension_and_the_centre_settles_a_disputed_return(
        server: Server, screens: Screens, screenshots: Path) -> None:
    case_id = server.report_case("Broken kerb stones at the crossing (suspension, return)")["id"]
    server.post("disp-a", f"/grid-cases/{case_id}/register", {})
    server.post("disp-a", f"/grid-cases/{case_id}/dispatch", {"department": "urban-management"})

    # The department cannot stop its clock itself: it asks.
    department = screens.login("dept-um")
    open_case(department, case_id)
    expect(department.testid("action-suspend")).to_have_count(0)
    act(department, "request-suspension", {"reason": "A road closure permit is needed first"})
    expect(department.testid("detail-pending-suspension")).to_contain_text("road closure")

    dispatcher = screens.login("disp-a")
    open_case(dispatcher, case_id, queue="suspension-requests")
    dispatcher.page.screenshot(path=screenshots / "dashboard-suspension-request.png")
    act(dispatcher, "approve-suspension")
    expect(dispatcher.testid("detail-status")).to_have_text("suspended")

    # The permit came: the department resumes (that only starts the clock), then finds the
    # kerb is not its asset and returns the case.
    expect(department.testid("detail-status")).to_have_text("suspended")
    act(department, "resume")
    expect(department.testid("detail-status")).to_have_text("dispatched")
    act(department, "return", {"reason": "The kerb belongs to the housing estate"})

    # The centre reviews the return and rejects it: back to the department, with the reason.
    open_case(dispatcher, case_id, queue="returns-to-review")
    expect(dispatcher.testid("detail-returned-by")).to_contain_text("urban-management")
    dispatcher.page.screenshot(path=screenshots / "dashboard-return-review.png")
    act(dispatcher, "reject-return", {"reason": "Public pavement: the estate ends at its gate"})
    expect(dispatcher.testid("detail-status")).to_have_text("dispatched")
    expect(dispatcher.page.locator("[data-testid=timeline-entry][data-event=ReturnRejected]")) \
        .to_be_visible()
    expect(row_of(department, case_id)).to_have_attribute("data-status", "dispatched")
