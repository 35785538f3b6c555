"""Federation broker: directory identities into AWS accounts and roles."""

__version__ = "0.1.0"
