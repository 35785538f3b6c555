"""What broker.flow decides with: the one audit writer and its event shape (``log``)."""
