"""Pure rules of the handoff: no I/O, no framework, no database.

Everything here takes plain values (and a clock when time matters) and returns plain
values, so that every rule can be unit- and property-tested in microseconds.
"""
