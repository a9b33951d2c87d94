"""Reading groups back from ``ovs-ofctl dump-groups`` (lab.testbed.parse_groups), on the text
Open vSwitch 3.1 printed for the kinds of groups local repair installs."""
from __future__ import annotations

from lab.testbed import parse_groups

DUMP = """OFPST_GROUP_DESC reply (OF1.3) (xid=0x2):
 group_id=1073741900,type=ff,bucket=watch_port:1,actions=output:1,bucket=watch_port:2,actions=set_field:20->mpls_label,output:2
 group_id=1073741901,type=ff,bucket=watch_port:2,actions=output:2,bucket=watch_port:1,actions=set_field:20->mpls_label,IN_PORT
 group_id=5,type=select,bucket=weight:1000,actions=push_mpls:0x8847,set_field:17->mpls_label,group:1073741900,bucket=weight:0,actions=push_mpls:0x8847,set_field:18->mpls_label,output:2
 group_id=6,type=select,bucket=weight:500,watch_port:1,actions=push_mpls:0x8847,set_field:17->mpls_label,output:1,bucket=weight:500,watch_port:2,actions=push_mpls:0x8847,set_field:18->mpls_label,output:2
"""


def test_failover_select_and_chained_buckets_are_read_back():
    groups = parse_groups(DUMP)
    failover, chained, watched = groups[1073741900], groups[5], groups[6]
    assert failover.type == "ff" and failover.watched == (1, 2)
    assert [(label, port) for label, _, port in failover.buckets] == [(None, 1), (20, 2)]
    # A bucket that continues in the failover group leaves by that group's first port.
    assert chained.type == "select" and chained.chained == (1073741900, None)
    assert chained.buckets == ((17, 1000, 1), (18, 0, 2)) and chained.watched == (None, None)
    assert watched.buckets == ((17, 500, 1), (18, 500, 2)) and watched.watched == (1, 2)
    assert watched.weights() == {17: 500, 18: 500}
    # A detour back out of the port the packet came in by outputs to IN_PORT: the watched one.
    assert groups[1073741901].buckets == ((None, 1, 2), (20, 1, 1))
