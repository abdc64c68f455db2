"""Execute-node naming, addressing and configuration (no pool needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gproc.wrappers.htcondor.nodes import Node, checked_node_name, subnet
from gproc.wrappers.htcondor.pool import PersonalPool


def test_pools_on_different_ports_get_different_subnets() -> None:
    assert subnet(9618) == "10.37.146"
    assert subnet(9718) == "10.37.246"
    assert len({subnet(p) for p in range(9600, 9700)}) == 100


@pytest.mark.parametrize("name", ["", "A", "-a", "a b", "a;id", "a/b", "a" * 17, "1a"])
def test_node_names_are_checked(name: str) -> None:
    with pytest.raises(ValueError):
        checked_node_name(name)


def test_node_names_addresses_and_interfaces_are_the_pools(tmp_path: Path) -> None:
    nodes = PersonalPool(tmp_path, port=9718).nodes
    node = Node("n1", index=3, slots=2)
    assert nodes.address(node) == "10.37.246.13"
    assert nodes.host_address == "10.37.246.1"
    assert nodes.netns("n1") == "gpn9718-n1"
    assert all(len(i) <= 15 for i in (nodes.bridge, *nodes._veth(Node("n", 200, 1))))


def test_node_config_names_slots_address_and_the_dedicated_instance(tmp_path: Path) -> None:
    nodes = PersonalPool(tmp_path, port=9718).nodes
    text = nodes.config_text(Node("n1", index=3, slots=4, instance="inst1"))
    lines = dict(ln.split(" = ", 1) for ln in text.splitlines() if " = " in ln)
    assert lines["NETWORK_INTERFACE"] == "10.37.246.13"
    assert lines["COLLECTOR_HOST"] == "127.0.0.1:9718"  # through the relay
    assert lines["CCB_ADDRESS"] == "$(COLLECTOR_HOST)"
    assert lines["NUM_SLOTS_TYPE_1"] == "4"
    assert lines["START"] == '(TARGET.GprocInstance =?= "inst1")'
    assert lines["FILESYSTEM_DOMAIN"] != "gproc.pool"  # no shared-filesystem jobs here
    open_node = nodes.config_text(Node("n2", index=4, slots=1))
    assert "START = True\n" in open_node


def test_adding_a_node_to_a_pool_that_is_not_up_says_so(tmp_path: Path) -> None:
    pool = PersonalPool(tmp_path, port=9799)
    with pytest.raises(Exception, match="not up"):
        pool.add_node("n1")
    with pytest.raises(ValueError):
        pool.add_node("bad name")
    assert pool.remove_node("n1") is False
