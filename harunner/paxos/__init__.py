"""Ownership consensus: single-decree Paxos per (job_id, generation), sans-IO.

The pure core (ballot, messages, acceptor, proposer, learner, node, codec)
does no I/O and reads no clock or global randomness: `now` and a seeded
`random.Random` are passed in. `storage` is the one module that touches files.
See docs/paxos.md.
"""

from harunner.paxos.acceptor import Acceptor, AcceptorState, Vote, repaired, unusable
from harunner.paxos.ballot import NO_BALLOT, Ballot, InstanceKey, Value, majority
from harunner.paxos.codec import CodecError, Rejects, decode, encode
from harunner.paxos.learner import Learner
from harunner.paxos.messages import (
    BATCH_LIMIT,
    Accept,
    Accepted,
    Message,
    Nack,
    NackReason,
    Prepare,
    Promise,
    Report,
)
from harunner.paxos.node import Effects, Node
from harunner.paxos.proposer import Proposer, ProposerState

__all__ = [
    "BATCH_LIMIT", "NO_BALLOT", "Accept", "Accepted", "Acceptor", "AcceptorState", "Ballot",
    "CodecError", "Effects", "InstanceKey", "Learner", "Message", "Nack",
    "NackReason", "Node", "Prepare", "Promise", "Proposer", "ProposerState", "Rejects",
    "Report", "Value", "Vote", "decode", "encode", "majority", "repaired", "unusable",
]
