"""Dispatch: the road graph, suggestions by road ETA, assignment of crews to tickets."""
