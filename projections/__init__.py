"""Read models built from the event store: each projection follows an application's
notification log and writes its rows and its tracking position in one transaction, so it
resumes exactly where it stopped and can always be rebuilt from zero.
"""
