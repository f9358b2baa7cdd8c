"""The probe: what a frozen encoder's features say about the labels, read by a light head fitted on cached features."""
