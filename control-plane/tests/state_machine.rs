//! Property tests of the control plane's state machine: random sequences of valid and
//! invalid operations, with restarts from the persisted state, checking the invariants of
//! shared/DESIGN.md (1-6) after every step.

use ember_control_plane::state::{ClusterState, Op};
use ember_control_plane::store::file::Store;
use ember_core::{NodeId, Role, SlotSet, SLOT_COUNT};
use proptest::prelude::*;
use uuid::Uuid;

const NODES: u128 = 6;

fn id(i: u128) -> NodeId {
    Uuid::from_u128(0xabcd_0000_0000_0000_0000_0000_0000_0000 + i)
}

fn register(i: u128) -> Op {
    Op::Register {
        id: id(i),
        name: Some(format!("n{i}")),
        client_addr: format!("127.0.0.1:{}", 7000 + i),
        internal_addr: format!("127.0.0.1:{}", 17000 + i),
    }
}

/// NODE arguments: ids, prefixes (some ambiguous), names, addresses, garbage.
fn node_query() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..NODES).prop_map(|i| id(i).to_string()),
        (0..NODES).prop_map(|i| format!("n{i}")),
        (0..NODES).prop_map(|i| format!("127.0.0.1:{}", 7000 + i)),
        Just("abcd".to_string()),
        Just("nobody".to_string()),
    ]
}

fn slots() -> impl Strategy<Value = SlotSet> {
    prop_oneof![
        (0..SLOT_COUNT, 0u16..2000)
            .prop_map(|(s, len)| (s..=s.saturating_add(len).min(SLOT_COUNT - 1)).collect()),
        Just(SlotSet::full()),
        Just(SlotSet::new()),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Op(Op),
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..NODES, any::<bool>(), 0u128..3).prop_map(|(i, named, shift)| Step::Op(Op::Register {
            id: id(i),
            name: named.then(|| format!("n{i}")),
            // Sometimes another node's address, to exercise duplicate detection.
            client_addr: format!("127.0.0.1:{}", 7000 + (i + shift) % NODES),
            internal_addr: format!("127.0.0.1:{}", 17000 + i),
        })),
        1 => proptest::collection::vec(node_query(), 0..4)
            .prop_flat_map(|nodes| (Just(nodes), 0usize..3))
            .prop_map(|(nodes, replicas)| Step::Op(Op::Bootstrap { nodes, replicas })),
        2 => (node_query(), proptest::option::of(node_query()))
            .prop_map(|(node, replica_of)| Step::Op(Op::Join { node, replica_of })),
        3 => (node_query(), slots()).prop_map(|(node, slots)| Step::Op(Op::Assign { node, slots })),
        1 => (node_query(), any::<bool>()).prop_map(|(node, force)| Step::Op(Op::Forget { node, force })),
        1 => proptest::collection::vec((0..NODES, any::<bool>()), 1..3)
            .prop_map(|c| Step::Op(Op::SetHealth { changes: c.into_iter().map(|(i, f)| (id(i), f)).collect() })),
        1 => proptest::option::of(any::<bool>())
            .prop_map(|v| Step::Op(Op::SetConfig { require_full_coverage: v })),
        2 => (0u128..3, node_query(), slots(), 1usize..4).prop_map(|(m, target, slots, max_running)| {
            Step::Op(Op::StartMigration { id: Uuid::from_u128(m), target, slots, max_running })
        }),
        1 => (0u128..3).prop_map(|m| Step::Op(Op::CommitMigration { id: Uuid::from_u128(m) })),
        1 => (0u128..3).prop_map(|m| Step::Op(Op::AbortMigration { id: Uuid::from_u128(m), reason: "test".into() })),
        2 => (0..NODES, 0..NODES).prop_map(|(p, r)| Step::Op(Op::Failover { primary: id(p), promote: id(r) })),
        1 => node_query().prop_map(|node| Step::Op(Op::Promote { node })),
        1 => (node_query(), node_query()).prop_map(|(node, primary)| Step::Op(Op::Replicate { node, primary })),
        1 => Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_every_step(steps in proptest::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut state = ClusterState::new(Uuid::new_v4());
        store.save(&state).unwrap();
        for step in steps {
            match step {
                Step::Restart => {
                    let loaded = store.load().unwrap().expect("state was saved");
                    prop_assert_eq!(&loaded, &state, "reloaded state differs");
                    state = loaded;
                }
                // Rejected ops leave `state` untouched: `apply` takes `&self`.
                Step::Op(op) => if let Ok((next, outcome)) = state.apply(&op) {
                    prop_assert_eq!(next.consistency_check(), Ok(()), "after {:?}", op);
                    let (before, after) = (&state.topology, &next.topology);
                    if outcome.changed {
                        prop_assert_eq!(after.version, before.version + 1);
                    } else {
                        prop_assert_eq!(&next, &state, "a no-op changed the state");
                    }
                    prop_assert!(after.current_epoch >= before.current_epoch);
                    let moved: Vec<u16> =
                        (0..SLOT_COUNT).filter(|s| before.slots.owner(*s) != after.slots.owner(*s)).collect();
                    if moved.is_empty() {
                        prop_assert_eq!(after.current_epoch, before.current_epoch);
                    } else {
                        prop_assert!(after.current_epoch > before.current_epoch, "ownership changed without an epoch bump");
                        // Each gainer took a fresh epoch from this op's bumps; an op with
                        // one gainer (all but bootstrap) gives it exactly the new epoch.
                        let mut gainers: Vec<NodeId> = moved.iter().filter_map(|s| after.slots.owner(*s)).collect();
                        gainers.sort();
                        gainers.dedup();
                        for g in &gainers {
                            let epoch = after.nodes[g].config_epoch;
                            prop_assert!(epoch > before.current_epoch && epoch <= after.current_epoch);
                        }
                        if let [g] = gainers.as_slice() {
                            prop_assert_eq!(after.nodes[g].config_epoch, after.current_epoch);
                        }
                    }
                    let mut all: Vec<NodeId> = next.all_nodes().map(|n| n.id).collect();
                    let count = all.len();
                    all.sort();
                    all.dedup();
                    prop_assert_eq!(all.len(), count, "a node has two entries");
                    if outcome.changed {
                        store.save(&next).unwrap();
                    }
                    state = next;
                },
            }
        }
    }
}

/// The story gossip clusters get wrong: a joining node's empty slot list never clears
/// another node's slots, and the bootstrap node's epoch equals the current epoch.
#[test]
fn joining_nodes_never_clear_slots() {
    let mut state = ClusterState::new(Uuid::new_v4());
    state = state.apply(&register(0)).unwrap().0;
    state = state
        .apply(&Op::Bootstrap {
            replicas: 0,
            nodes: vec!["n0".into()],
        })
        .unwrap()
        .0;
    assert_eq!(state.topology.slots.count_of(&id(0)), 16384);
    assert_eq!(
        state.topology.nodes[&id(0)].config_epoch,
        state.topology.current_epoch
    );
    for i in 1..3 {
        state = state.apply(&register(i)).unwrap().0;
        state = state
            .apply(&Op::Join {
                node: format!("n{i}"),
                replica_of: None,
            })
            .unwrap()
            .0;
        // Re-registering (a node restarting) changes nothing.
        let (again, outcome) = state.apply(&register(i)).unwrap();
        assert!(!outcome.changed);
        assert_eq!(again, state);
    }
    assert_eq!(state.topology.nodes.len(), 3);
    assert!(state.pending.is_empty());
    assert_eq!(state.topology.slots.count_of(&id(0)), 16384);
    // Re-running bootstrap with the same nodes is a no-op; with others, an error.
    let all = vec!["n0".into(), "n1".into(), "n2".into()];
    let (same, outcome) = state
        .apply(&Op::Bootstrap {
            nodes: all,
            replicas: 0,
        })
        .unwrap();
    assert!(!outcome.changed);
    assert_eq!(same, state);
    assert!(state
        .apply(&Op::Bootstrap {
            replicas: 0,
            nodes: vec!["n1".into()]
        })
        .is_err());
}

#[test]
fn bad_requests_are_refused_with_reasons() {
    let mut state = ClusterState::new(Uuid::new_v4());
    for i in 0..3 {
        state = state.apply(&register(i)).unwrap().0;
    }
    let err = |state: &ClusterState, op: Op| state.apply(&op).unwrap_err().to_string();
    let one = || SlotSet::from_iter([0]);
    assert!(err(
        &state,
        Op::Join {
            node: "n1".into(),
            replica_of: None
        }
    )
    .contains("not bootstrapped"));
    state = state
        .apply(&Op::Bootstrap {
            replicas: 0,
            nodes: vec!["n0".into(), "n1".into()],
        })
        .unwrap()
        .0;
    assert_eq!(state.topology.current_epoch, 2);
    assert!(err(
        &state,
        Op::Assign {
            node: "n1".into(),
            slots: one()
        }
    )
    .contains("live migration"));
    assert!(err(
        &state,
        Op::Assign {
            node: "ghost".into(),
            slots: one()
        }
    )
    .contains("no node matches"));
    assert!(err(
        &state,
        Op::Assign {
            node: "n2".into(),
            slots: one()
        }
    )
    .contains("emberctl join"));
    assert!(err(
        &state,
        Op::Forget {
            node: "n0".into(),
            force: false
        }
    )
    .contains("--force"));
    state = state
        .apply(&Op::Join {
            node: "n2".into(),
            replica_of: Some("n0".into()),
        })
        .unwrap()
        .0;
    assert!(err(
        &state,
        Op::Assign {
            node: "n2".into(),
            slots: one()
        }
    )
    .contains("replica"));
    assert!(err(
        &state,
        Op::Forget {
            node: "n0".into(),
            force: true
        }
    )
    .contains("replicas"));
    // A new identity at a member's address is refused, naming the way out.
    let intruder = Op::Register {
        id: id(9),
        name: None,
        client_addr: "127.0.0.1:7001".into(),
        internal_addr: "127.0.0.1:17009".into(),
    };
    assert!(err(&state, intruder).contains("forget --force"));
    // forget --force frees the slots and bumps the epoch.
    let before = state.topology.current_epoch;
    let (after, outcome) = state
        .apply(&Op::Forget {
            node: "n1".into(),
            force: true,
        })
        .unwrap();
    assert!(outcome.summary.contains("unassigned"));
    assert_eq!(after.topology.current_epoch, before + 1);
    assert_eq!(after.topology.slots.assigned(), 16384 - 8192);
}

#[test]
fn migrations_commit_with_an_epoch_bump_and_abort_without_one() {
    let mut state = ClusterState::new(Uuid::new_v4());
    for i in 0..2 {
        state = state.apply(&register(i)).unwrap().0;
    }
    state = state
        .apply(&Op::Bootstrap {
            replicas: 0,
            nodes: vec!["n0".into()],
        })
        .unwrap()
        .0;
    state = state
        .apply(&Op::Join {
            node: "n1".into(),
            replica_of: None,
        })
        .unwrap()
        .0;
    let slots = SlotSet::parse_args(&["0-99"]).unwrap();
    let start = |id: u128| Op::StartMigration {
        id: Uuid::from_u128(id),
        target: "n1".into(),
        slots: slots.clone(),
        max_running: 4,
    };
    state = state.apply(&start(1)).unwrap().0;
    // Slots in flight can be neither migrated again nor assigned, and the source stays owner.
    assert!(state
        .apply(&start(2))
        .unwrap_err()
        .to_string()
        .contains("already being migrated"));
    assert_eq!(state.topology.slots.owner(0), Some(id(0)));
    let epoch = state.topology.current_epoch;
    let (aborted, _) = state
        .apply(&Op::AbortMigration {
            id: Uuid::from_u128(1),
            reason: "test".into(),
        })
        .unwrap();
    assert_eq!(aborted.topology.current_epoch, epoch);
    assert_eq!(aborted.topology.slots.owner(0), Some(id(0)));
    let (committed, _) = state
        .apply(&Op::CommitMigration {
            id: Uuid::from_u128(1),
        })
        .unwrap();
    assert_eq!(committed.topology.current_epoch, epoch + 1);
    assert_eq!(committed.topology.nodes[&id(1)].config_epoch, epoch + 1);
    assert_eq!(committed.topology.slots.count_of(&id(1)), 100);
    assert!(committed.topology.migrations.is_empty());
    assert_eq!(committed.consistency_check(), Ok(()));
    // A late report for an ended migration is refused and changes nothing.
    assert!(committed
        .apply(&Op::CommitMigration {
            id: Uuid::from_u128(1)
        })
        .is_err());
}

#[test]
fn failover_hands_the_shard_to_the_replica_with_an_epoch_bump() {
    let mut state = ClusterState::new(Uuid::new_v4());
    for i in 0..4 {
        state = state.apply(&register(i)).unwrap().0;
    }
    let apply = |s: &ClusterState, op: Op| s.apply(&op).unwrap().0;
    state = apply(
        &state,
        Op::Bootstrap {
            replicas: 0,
            nodes: vec!["n0".into(), "n1".into()],
        },
    );
    for r in ["n2", "n3"] {
        state = apply(
            &state,
            Op::Join {
                node: r.into(),
                replica_of: Some("n0".into()),
            },
        );
    }
    let owned = |s: &ClusterState, i: u128| {
        (0..SLOT_COUNT)
            .filter(|x| s.topology.slots.owner(*x) == Some(id(i)))
            .count()
    };
    let n0_slots = owned(&state, 0);
    let epoch = state.topology.current_epoch;
    // Not a replica of that primary / not a primary: refused, nothing changes.
    for (p, r) in [(0, 1), (2, 3), (1, 2)] {
        assert!(
            state
                .apply(&Op::Failover {
                    primary: id(p),
                    promote: id(r)
                })
                .is_err(),
            "{p} -> {r}"
        );
    }
    let next = apply(
        &state,
        Op::Failover {
            primary: id(0),
            promote: id(2),
        },
    );
    next.consistency_check().unwrap();
    let t = &next.topology;
    assert_eq!(owned(&next, 2), n0_slots);
    assert_eq!(owned(&next, 0), 0);
    assert_eq!(t.current_epoch, epoch + 1);
    assert_eq!(t.nodes[&id(2)].config_epoch, epoch + 1);
    assert_eq!(t.nodes[&id(2)].role, Role::Primary);
    assert_eq!(t.nodes[&id(0)].role, Role::Replica { of: id(2) });
    assert_eq!(
        t.nodes[&id(3)].role,
        Role::Replica { of: id(2) },
        "the shard's other replica follows the new primary"
    );
    assert_eq!(t.version, state.topology.version + 1);
}

#[test]
fn bootstrap_with_replicas_spreads_them_off_their_primarys_host() {
    let mut state = ClusterState::new(Uuid::new_v4());
    // Three hosts, two nodes each: n0,n1 on host a, n2,n3 on b, n4,n5 on c.
    for i in 0..6u128 {
        let op = Op::Register {
            id: id(i),
            name: Some(format!("n{i}")),
            client_addr: format!("10.0.0.{}:{}", i / 2, 7000 + i),
            internal_addr: format!("10.0.0.{}:{}", i / 2, 17000 + i),
        };
        state = state.apply(&op).unwrap().0;
    }
    let nodes: Vec<String> = ["n0", "n2", "n4", "n1", "n3", "n5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(
        state
            .apply(&Op::Bootstrap {
                nodes: nodes[..1].to_vec(),
                replicas: 1
            })
            .is_err(),
        "one node cannot be a primary with a replica"
    );
    let next = state
        .apply(&Op::Bootstrap { nodes, replicas: 1 })
        .unwrap()
        .0;
    next.consistency_check().unwrap();
    let t = &next.topology;
    let host = |i: u128| {
        t.nodes[&id(i)]
            .client_addr
            .split(':')
            .next()
            .unwrap()
            .to_string()
    };
    let mut primaries_with_replica = std::collections::BTreeSet::new();
    for r in [1u128, 3, 5] {
        let Role::Replica { of } = t.nodes[&id(r)].role else {
            panic!("n{r} should be a replica");
        };
        let p = (0..6).find(|i| id(*i) == of).unwrap();
        assert_ne!(host(p), host(r), "n{r} sits on its primary n{p}'s host");
        primaries_with_replica.insert(p);
    }
    assert_eq!(primaries_with_replica.len(), 3, "one replica per primary");
    for p in [0u128, 2, 4] {
        assert_eq!(t.nodes[&id(p)].role, Role::Primary);
        assert!((0..SLOT_COUNT).any(|s| t.slots.owner(s) == Some(id(p))));
    }
}

#[test]
fn replicate_and_promote_by_name() {
    let mut state = ClusterState::new(Uuid::new_v4());
    for i in 0..3 {
        state = state.apply(&register(i)).unwrap().0;
    }
    let apply = |s: &ClusterState, op: Op| s.apply(&op);
    state = apply(
        &state,
        Op::Bootstrap {
            nodes: vec!["n0".into()],
            replicas: 0,
        },
    )
    .unwrap()
    .0;
    state = apply(
        &state,
        Op::Join {
            node: "n1".into(),
            replica_of: None,
        },
    )
    .unwrap()
    .0;
    let replicate = |node: &str, primary: &str| Op::Replicate {
        node: node.into(),
        primary: primary.into(),
    };
    // The slot owner cannot become a replica; nor can a node replicate itself.
    assert!(apply(&state, replicate("n0", "n1")).is_err());
    assert!(apply(&state, replicate("n1", "n1")).is_err());
    state = apply(&state, replicate("n1", "n0")).unwrap().0;
    assert_eq!(
        state.topology.nodes[&id(1)].role,
        Role::Replica { of: id(0) }
    );
    let (same, outcome) = apply(&state, replicate("n1", "n0")).unwrap();
    assert!(!outcome.changed && same == state, "again: no new version");
    assert!(
        apply(&state, Op::Promote { node: "n0".into() }).is_err(),
        "n0 is a primary"
    );
    state = apply(&state, Op::Promote { node: "n1".into() }).unwrap().0;
    state.consistency_check().unwrap();
    assert_eq!(
        state.topology.nodes[&id(0)].role,
        Role::Replica { of: id(1) }
    );
    assert!((0..SLOT_COUNT).all(|s| state.topology.slots.owner(s) == Some(id(1))));
}
