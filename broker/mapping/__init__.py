"""Group-to-role mapping: the data model, pure resolution and the store interface."""
