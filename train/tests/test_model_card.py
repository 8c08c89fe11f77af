"""The model card's int8 line follows the int8 report for this very bundle, and only for it."""

from earshot_train.model_card import int8_line


def test_no_report_or_other_bundle_says_not_measured():
    assert "not measured" in int8_line("a", None)
    rep = {"bundle_name": "b", "decision": {"ship_int8": False, "because": "slower"}}
    assert "not measured" in int8_line("a", rep)


def test_report_for_this_bundle_gives_its_decision():
    rep = {"bundle_name": "a", "decision": {"ship_int8": False, "variant": None, "because": "x is slower"}}
    assert "No int8 variant is shipped — x is slower" in int8_line("a", rep)
    rep = {"bundle_name": "a", "decision": {"ship_int8": True, "variant": "static-u8u8", "because": ""}}
    assert "`static-u8u8` meets" in int8_line("a", rep)


def test_regeneration_keeps_the_decoding_section():
    from earshot_train.model_card import keep_section

    dec = "## Decoding and confidence\n\nPlatt a, b.\n\n"
    old = "# Card\n\n## Quality\n\nold\n\n" + dec + "## Data and attribution\n\nx\n"
    new = "# Card\n\n## Quality\n\nnew\n\n## Data and attribution\n\ny\n"
    assert (
        keep_section(old, new) == "# Card\n\n## Quality\n\nnew\n\n" + dec + "## Data and attribution\n\ny\n"
    )
    assert keep_section("# no section\n", new) == new
