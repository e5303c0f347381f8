"""Long waits: signals sent to executions, and executions parked while they only wait.

``signals.py`` keeps the signals no ``wait`` node took yet and hands each to the first wait for
its name; ``parking.py`` follows executions an engine gave back (status ``waiting``) and places
them again when a task of theirs ends or their timer is due.
"""
