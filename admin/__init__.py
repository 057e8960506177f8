"""Flask admin for sfcti."""
