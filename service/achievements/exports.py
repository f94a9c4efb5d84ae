"""Achievements as files a spreadsheet opens safely: CSV and an Excel workbook."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

import xlsxwriter

from service.achievements.queries import to_json
from service.platform.jsonutil import iso

COLUMNS = ("id", "title", "type", "category", "date", "proof_url", "description", "status",
           "created_at", "updated_at")
# Spreadsheets run a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A spreadsheet whose locale splits on the other separator (";" in Russian Excel, "," elsewhere)
# cuts a cell there, quotes or not: what follows a separator may start a cell too.
_FORMULA_AFTER_SEPARATOR = re.compile(r"([;,])(?=[=+\-@\t\r])")


def neutralise(value: Any) -> str:
    """A CSV cell as text: a formula character at its start, or right after a separator
    inside it, gets a ``'`` before it."""
    text = _FORMULA_AFTER_SEPARATOR.sub(r"\1'", "" if value is None else str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def _text(value: Any) -> Any:
    """A value as the JSON representation writes it (times in UTC with a Z)."""
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def csv_cells(row: Mapping[str, Any]) -> list[str]:
    data = to_json(row)
    return [neutralise(_text(data[column])) for column in COLUMNS]


def csv_lines(rows: Iterable[list[str]]) -> bytes:
    """Every cell quoted: a separator inside a cell (``;`` in locales whose spreadsheets split
    on it) can then never start a new, unneutralised cell."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def xlsx_workbook(rows: list[Mapping[str, Any]]) -> bytes:
    """One sheet with the CSV's columns: text cells are strings (never formulas, links or
    numbers, whatever they start with), ``date`` a date cell, the timestamps date-time cells
    in UTC."""
    output = io.BytesIO()
    workbook = xlsxwriter.Workbook(output, {
        "in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
        "strings_to_numbers": False,
    })
    sheet = workbook.add_worksheet("Achievements")
    bold = workbook.add_format({"bold": True})
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    time_format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    for column, name in enumerate(COLUMNS):
        sheet.write_string(0, column, name, bold)
    for index, row in enumerate(rows, start=1):
        for column, name in enumerate(COLUMNS):
            value = row[name]
            if value is None:
                sheet.write_blank(index, column, None)
            elif isinstance(value, dt.datetime):
                sheet.write_datetime(index, column, value.astimezone(dt.UTC).replace(tzinfo=None), time_format)
            elif isinstance(value, dt.date):
                sheet.write_datetime(index, column, value, date_format)
            else:
                sheet.write_string(index, column, str(value))
    sheet.freeze_panes(1, 0)
    sheet.set_column(0, 0, 38)
    sheet.set_column(1, 1, 50)
    workbook.close()
    return output.getvalue()


def xlsx_sheet(title: str, headers: list[str], rows: list[list[Any]]) -> bytes:
    """A plain sheet (a rating a dean's office prints): strings stay strings, numbers numbers."""
    output = io.BytesIO()
    workbook = xlsxwriter.Workbook(output, {"in_memory": True, "strings_to_formulas": False,
                                            "strings_to_urls": False, "strings_to_numbers": False})
    sheet = workbook.add_worksheet(title)
    bold = workbook.add_format({"bold": True})
    for column, name in enumerate(headers):
        sheet.write_string(0, column, name, bold)
    for index, row in enumerate(rows, start=1):
        for column, value in enumerate(row):
            if isinstance(value, bool) or value is None:
                sheet.write_string(index, column, "" if value is None else ("yes" if value else ""))
            elif isinstance(value, int | float):
                sheet.write_number(index, column, value)
            else:
                sheet.write_string(index, column, str(value))
    sheet.freeze_panes(1, 0)
    sheet.set_column(1, 2, 30)
    workbook.close()
    return output.getvalue()
