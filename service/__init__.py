"""Achievement Journal API service."""
