"""Classroom assignments in nbgrader's format: student self-checks, release, autograding."""
