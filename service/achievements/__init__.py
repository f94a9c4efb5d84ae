"""Achievements, the heart of the domain, in three parts:

- ``rules``: pure decisions (who may do what, valid URLs and dates, ETags and preconditions);
- ``queries``: how achievements are read (representation, filters, keyset pages, stats);
- ``usecases``: what users do (create, edit, review, delete, import), one transaction each;

plus ``exports`` (CSV and XLSX files).
"""
