"""Corpus v2 (issue 14 item 1): taxonomy, curation, splits, caption grammar and rendering spec.

Pipeline order: :mod:`.sources` lists every shared file, :mod:`.tags` runs mn04 once over them (cached
outside git), :mod:`.taxonomy` loads ``train/configs/taxonomy.toml``, :mod:`.curate` maps files to classes
and writes the committed manifest, :mod:`.grammar` builds captions and :mod:`.render` presents clips the
way the runtime sees them.
"""
