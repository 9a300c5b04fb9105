"""web3.py watching through filters: w3.eth.filter("latest") (a block filter) and a
log filter on the Ping contract, polled every 150 ms against the gateway.

argv: gw, contract, events, blocks. Prints {"ready": "web3.py"} once both filters exist,
then one line with every block hash and event seen, and the errors of the polls.
"""

import json
import sys
import time

from web3 import Web3

PING = "0x48257dc961b6f792c2b78a080dacfed693b660960a702de21cee364e20270e2f"


def main():
    gw, contract, want_events, want_blocks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    w3 = Web3(Web3.HTTPProvider(gw, request_kwargs={"timeout": 10}))
    blocks_filter = w3.eth.filter("latest")
    logs_filter = w3.eth.filter({"address": Web3.to_checksum_address(contract), "topics": [PING]})
    print(json.dumps({"ready": "web3.py"}), flush=True)
    blocks, events, errors = [], [], []
    deadline = time.monotonic() + 120
    while (len(blocks) < want_blocks or len(events) < want_events) and time.monotonic() < deadline:
        try:
            blocks += ["0x" + bytes(h).hex() for h in blocks_filter.get_new_entries()]
            for log in logs_filter.get_new_entries():
                events.append(
                    {
                        "n": int.from_bytes(bytes(log["data"]), "big"),
                        "block": log["blockNumber"],
                        "tx": "0x" + bytes(log["transactionHash"]).hex(),
                        "removed": bool(log.get("removed", False)),
                    }
                )
        except Exception as e:  # every failed poll is a finding, not a crash
            errors.append(repr(e))
        time.sleep(0.15)
    print(json.dumps({"client": "web3.py", "blocks": blocks, "events": events, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
