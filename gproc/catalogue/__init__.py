"""GDIS: the data catalogue (datasets, spatial search, GQL/LLQL, gazetteer)."""
