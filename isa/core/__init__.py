"""Infrastructure with no domain knowledge: settings, logging, database, HTTP, metrics."""
