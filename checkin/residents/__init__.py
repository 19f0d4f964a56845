"""Residents: registration, bulk import (route and CLI), companions."""
