"""The NetworkPolicy part of k8s/check: an evaluator of what the rendered policies allow
between pods of ours and peers outside (label selectors, namespace selectors, ipBlocks,
named and ranged ports, egress of the source then ingress of the destination), and the
table of peers and ports that must be allowed or denied, as k8s/README.md says.

A module beside k8s/check (which imports it) so each file stays small; it reads nothing
itself: k8s/check hands it the rendered objects, their pods and the ports.
"""
import ipaddress


def selects(selector, labels):
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        has, val = e["key"] in labels, labels.get(e["key"])
        op = e["operator"]
        if (op == "In" and val not in e["values"]) or (op == "NotIn" and has and val in e["values"]) \
                or (op == "Exists" and not has) or (op == "DoesNotExist" and has):
            return False
    return True


def policy_types(pol):
    spec = pol["spec"]
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


class Net:
    """What the rendered policies allow, for a pod of ours or a peer outside."""

    def __init__(self, objs, pods):
        self.policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
        self.pods = {p["name"]: p for p in pods}
        self.ns_labels = {}
        for o in objs:
            if o["kind"] == "Namespace":
                self.ns_labels[o["metadata"]["name"]] = dict(o["metadata"].get("labels", {}))

    def labels_of_ns(self, ns):
        return {**self.ns_labels.get(ns, {}), "kubernetes.io/metadata.name": ns}

    def peer_matches(self, rule_peer, policy_ns, peer):
        if "ipBlock" in rule_peer:
            ip = ipaddress.ip_address(peer["ip"])
            block = rule_peer["ipBlock"]
            return ip in ipaddress.ip_network(block["cidr"]) and not any(
                ip in ipaddress.ip_network(x) for x in block.get("except", []))
        if "ns" not in peer:
            return False  # an address outside the cluster matches ipBlocks only
        if "namespaceSelector" in rule_peer:
            if not selects(rule_peer["namespaceSelector"], self.labels_of_ns(peer["ns"])):
                return False
        elif peer["ns"] != policy_ns:
            return False
        return "podSelector" not in rule_peer or selects(rule_peer["podSelector"], peer["labels"])

    @staticmethod
    def port_matches(rule_ports, port, proto, dst):
        if not rule_ports:
            return True
        for rp in rule_ports:
            if rp.get("protocol", "TCP") != proto:
                continue
            if "port" not in rp:
                return True
            want = rp["port"]
            if isinstance(want, str):
                want = dst.get("named_ports", {}).get(want) if dst else None
            if want is not None and want <= port <= rp.get("endPort", want):
                return True
        return False

    def governing(self, pod, direction):
        return [p for p in self.policies
                if p["metadata"].get("namespace", "default") == pod["ns"]
                and selects(p["spec"]["podSelector"], pod["labels"])
                and direction in policy_types(p)]

    def allowed(self, src, dst, port, proto="TCP"):
        """Whether src may open port/proto on dst: src's egress, then dst's ingress.
        A peer of ours (one of self.pods) is held to its policies; others only to the
        destination's."""
        if src.get("ours"):
            pols = self.governing(src, "Egress")
            if pols and not any(
                self.port_matches(r.get("ports"), port, proto, dst)
                and (not r.get("to") or any(self.peer_matches(t, pol["metadata"]["namespace"], dst) for t in r["to"]))
                for pol in pols for r in pol["spec"].get("egress", [])
            ):
                return False
        if dst.get("ours"):
            if (port, proto) not in dst["ports"]:
                return False  # nothing listens there
            pols = self.governing(dst, "Ingress")
            if pols and not any(
                self.port_matches(r.get("ports"), port, proto, dst)
                and (not r.get("from") or any(self.peer_matches(s, pol["metadata"]["namespace"], src) for s in r["from"]))
                for pol in pols for r in pol["spec"].get("ingress", [])
            ):
                return False
        return True


def ours(net, nm):
    p = net.pods.get(nm)
    return None if p is None else {**p, "ours": True}


def check_policies(objs, pods, where, f, admin_port, beacon_port):
    """`pods`: one entry per workload's pod template (k8s/check's pods_of); the ports:
    rpcgate's admin and beacon listeners."""
    ADMIN_PORT, BEACON_PORT = admin_port, beacon_port  # the table reads as k8s/check's
    net = Net(objs, pods)
    for p in net.pods.values():
        at = f"{where} pod of {p['name']}"
        own = [x for x in net.governing(p, "Ingress") + net.governing(p, "Egress")
               if x["spec"]["podSelector"] not in ({}, None)]
        deny_all = [x for x in net.policies if x["metadata"].get("namespace") == p["ns"]
                    and x["spec"]["podSelector"] in ({}, None)
                    and set(policy_types(x)) == {"Ingress", "Egress"}
                    and not x["spec"].get("ingress") and not x["spec"].get("egress")]
        f.check(deny_all, at, "its namespace has no default-deny NetworkPolicy")
        f.check(own, at, "no NetworkPolicy of its own selects it")

    ingress_ctl = {"ns": "ingress-nginx", "labels": {"app.kubernetes.io/name": "ingress-nginx"}, "ip": "10.244.200.1"}
    prometheus = {"ns": "monitoring", "labels": {"app.kubernetes.io/name": "prometheus"}, "ip": "10.244.201.1"}
    consensus = {"ns": "web3", "labels": {"app.kubernetes.io/component": "consensus-client"}, "ip": "10.244.202.1", "ours": True,
                 "name": "consensus-client"}
    other = {"ns": "web3", "labels": {"app.kubernetes.io/name": "something-else"}, "ip": "10.244.203.1", "ours": True,
             "name": "other"}
    kube_dns = {"ns": "kube-system", "labels": {"k8s-app": "kube-dns"}, "ip": "10.244.204.1",
                "ports": {(53, "UDP"), (53, "TCP")}}
    internet = {"ip": "8.8.8.8"}
    peer = {"ip": "192.0.2.44"}  # a devp2p peer on the internet
    validator = {"ns": "web3", "labels": {"app.kubernetes.io/component": "validator-client"}, "ip": "10.244.206.1",
                 "ours": True, "name": "validator-client"}
    rpcgate, geth, redis = ours(net, "rpcgate"), ours(net, "geth"), ours(net, "redis")
    lighthouse = ours(net, "lighthouse")
    if rpcgate is None or geth is None or lighthouse is None:
        f.add(where, "rpcgate, geth or lighthouse is missing")
        return
    expect = [
        # (who, to whom, port, protocol, allowed)
        ("ingress controller", ingress_ctl, "rpcgate", rpcgate, 8545, "TCP", True),
        ("ingress controller", ingress_ctl, "rpcgate admin", rpcgate, ADMIN_PORT, "TCP", False),
        ("ingress controller", ingress_ctl, "geth http", geth, 8545, "TCP", False),
        ("ingress controller", ingress_ctl, "geth ws", geth, 8546, "TCP", False),
        ("ingress controller", ingress_ctl, "geth authrpc", geth, 8551, "TCP", False),
        ("ingress controller", ingress_ctl, "geth metrics", geth, 6060, "TCP", False),
        ("prometheus", prometheus, "rpcgate admin", rpcgate, ADMIN_PORT, "TCP", True),
        ("prometheus", prometheus, "rpcgate", rpcgate, 8545, "TCP", False),
        ("prometheus", prometheus, "geth metrics", geth, 6060, "TCP", True),
        ("prometheus", prometheus, "geth http", geth, 8545, "TCP", False),
        ("prometheus", prometheus, "geth authrpc", geth, 8551, "TCP", False),
        ("rpcgate", rpcgate, "geth http", geth, 8545, "TCP", True),
        ("rpcgate", rpcgate, "geth ws", geth, 8546, "TCP", True),
        ("rpcgate", rpcgate, "geth authrpc", geth, 8551, "TCP", False),
        ("rpcgate", rpcgate, "geth metrics", geth, 6060, "TCP", False),
        ("rpcgate", rpcgate, "cluster DNS", kube_dns, 53, "UDP", True),
        ("rpcgate", rpcgate, "the internet", internet, 443, "TCP", False),
        ("consensus client", consensus, "geth authrpc", geth, 8551, "TCP", True),
        ("consensus client", consensus, "geth http", geth, 8545, "TCP", False),
        ("another web3 pod", other, "geth http", geth, 8545, "TCP", False),
        ("another web3 pod", other, "geth authrpc", geth, 8551, "TCP", False),
        ("another web3 pod", other, "rpcgate", rpcgate, 8545, "TCP", False),
        ("another web3 pod", other, "rpcgate admin", rpcgate, ADMIN_PORT, "TCP", False),
        ("the internet", internet, "rpcgate", rpcgate, 8545, "TCP", False),
        ("the internet", internet, "geth authrpc", geth, 8551, "TCP", False),
        ("a devp2p peer", peer, "geth p2p", geth, 30303, "TCP", True),
        ("geth", geth, "a devp2p peer", peer, 30303, "UDP", True),
        ("geth", geth, "rpcgate", rpcgate, 8545, "TCP", False),
        # The Beacon API: validator clients through rpcgate only.
        ("validator client", validator, "rpcgate beacon", rpcgate, BEACON_PORT, "TCP", True),
        ("validator client", validator, "lighthouse http", lighthouse, BEACON_PORT, "TCP", False),
        ("validator client", validator, "rpcgate", rpcgate, 8545, "TCP", False),
        ("validator client", validator, "geth http", geth, 8545, "TCP", False),
        ("validator client", validator, "the internet", internet, 443, "TCP", False),
        ("validator client", validator, "cluster DNS", kube_dns, 53, "UDP", True),
        ("rpcgate", rpcgate, "lighthouse http", lighthouse, BEACON_PORT, "TCP", True),
        ("rpcgate", rpcgate, "lighthouse metrics", lighthouse, 5054, "TCP", False),
        ("another web3 pod", other, "lighthouse http", lighthouse, BEACON_PORT, "TCP", False),
        ("another web3 pod", other, "rpcgate beacon", rpcgate, BEACON_PORT, "TCP", False),
        ("ingress controller", ingress_ctl, "lighthouse http", lighthouse, BEACON_PORT, "TCP", False),
        ("ingress controller", ingress_ctl, "rpcgate beacon", rpcgate, BEACON_PORT, "TCP", False),
        ("the internet", internet, "lighthouse http", lighthouse, BEACON_PORT, "TCP", False),
        ("prometheus", prometheus, "lighthouse metrics", lighthouse, 5054, "TCP", True),
        ("prometheus", prometheus, "lighthouse http", lighthouse, BEACON_PORT, "TCP", False),
        ("lighthouse", lighthouse, "geth authrpc", geth, 8551, "TCP", True),
        ("lighthouse", lighthouse, "geth http", geth, 8545, "TCP", False),
        ("lighthouse", lighthouse, "rpcgate beacon", rpcgate, BEACON_PORT, "TCP", False),
        ("lighthouse", lighthouse, "cluster DNS", kube_dns, 53, "UDP", True),
        ("a libp2p peer", peer, "lighthouse p2p", lighthouse, 9000, "TCP", True),
        ("a libp2p peer", peer, "lighthouse quic", lighthouse, 9001, "UDP", True),
        ("lighthouse", lighthouse, "a libp2p peer", peer, 9000, "UDP", True),
        ("lighthouse", lighthouse, "checkpoint sync", internet, 443, "TCP", True),
    ]
    if redis is not None:
        expect += [
            ("rpcgate", rpcgate, "redis", redis, 6379, "TCP", True),
            ("another web3 pod", other, "redis", redis, 6379, "TCP", False),
            ("ingress controller", ingress_ctl, "redis", redis, 6379, "TCP", False),
            ("geth", geth, "redis", redis, 6379, "TCP", False),
        ]
    else:
        expect.append(("rpcgate", rpcgate, "a redis port", {"ns": "web3", "labels": {"app.kubernetes.io/name": "redis"},
                                                            "ip": "10.244.205.1"}, 6379, "TCP", False))
    # Load balancer clients: inside the Service's source ranges in, outside not.
    for svc in (o for o in objs if o["kind"] == "Service" and o["spec"].get("type") == "LoadBalancer"):
        for cidr in svc["spec"].get("loadBalancerSourceRanges", []):
            inside = str(next(ipaddress.ip_network(cidr).hosts()))
            expect.append((f"a client in {cidr}", {"ip": inside}, "rpcgate", rpcgate, 8545, "TCP", True))
            expect.append((f"a client in {cidr}", {"ip": inside}, "rpcgate admin", rpcgate, ADMIN_PORT, "TCP", False))
    for who, src, what, dst, port, proto, want in expect:
        got = net.allowed(src, dst, port, proto)
        f.check(got == want, f"{where} NetworkPolicy",
                f"{who} -> {what} {port}/{proto}: {'allowed' if got else 'denied'}, must be {'allowed' if want else 'denied'}")
