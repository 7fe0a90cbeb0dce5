"""Allowed values of the listing categories, shared by the data rules, the simulator's
calibration and the service's input validation. Plain tuples: importable without pandas."""

from __future__ import annotations

GEARS: tuple[str, ...] = ("Manual", "Automatic", "Semi-automatic")
OFFER_TYPES: tuple[str, ...] = ("Used", "Pre-registered", "Demonstration", "Employee's car", "New")
FUELS: tuple[str, ...] = (
    "Gasoline",
    "Diesel",
    "Electric/Gasoline",
    "Electric",
    "Electric/Diesel",
    "LPG",
    "CNG",
    "Ethanol",
    "Hydrogen",
    "Others",
)
