"""Teams: many people on one PostgreSQL database, each seeing only their own rows.

This package owns who the user is (on PostgreSQL the database role Parley connects as,
``session_user``, never a config string: ``identity``), the row-level security that makes
the database itself enforce it (the policies, the ``parley_member`` group role and its
grants, created by migration ``0006_teams`` through ``rls``), the owner's verbs that admit
and remove members (``admin``: ``parley team add/remove/list``) and collections shared by
their owner with one member or with everyone (``shares``). SQLite stays a single-user file:
there the user is the ``user:`` setting and none of this applies.
"""
