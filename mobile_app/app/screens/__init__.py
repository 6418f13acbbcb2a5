"""One folder per screen: the .kv beside its .py. Screens read view-models and call the Handset
presenter; they hold no domain logic."""
