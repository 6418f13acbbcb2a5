"""The Helsinki demo: real addresses (© OpenStreetMap contributors, ODbL), synthetic people."""
