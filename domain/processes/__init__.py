"""The processes across streams: each follows one application's event log from a position it
tracks in another application's store, and issues that application's commands (the
eventsourcing library's process-application pattern).

- `following`: what every process shares (tracked positions, polling the logs, a command
  waiting for its own second step).
- `case_conversions`: the grid cases report the case a hotline ticket was converted into.
- `incident_escalations`: the incidents report the incident a ticket or an alarm became, and
  link the ticket or alarm to the incident it joins.
- `resource_movements`: the incidents record the resources sent to them and leaving them.
- `ticket_follow_up`: the tickets follow the case or incident they became.

They run in the projection thread (`FollowerThread`) of every process that follows, and a
command whose second step its caller reads back at once takes that step itself
(`CrossStreamProcess.catch_up_with`).
"""
