"""The warning desk: public and inter-agency warnings (drafted, approved by a second
person, issued, updated, cancelled) and the messages they send out."""
