//! The one test suite of the `Store` implementations, run on SQLite and on
//! PostgreSQL: seq invariant, idempotency, pages.

use std::{collections::HashSet, sync::Arc};

use app::domain::RoomId;
use server::store::{self, ListQuery, NewMessage, PoolOptions, Store};

use server::{
    both_backends,
    testing::{new_message, TestDb},
};

async fn open(db: &TestDb) -> Arc<dyn Store> {
    db.store().await
}

fn new(room: &str, content: &str) -> NewMessage {
    new_message(room, content)
}

both_backends!(
    seqs_are_per_room_and_start_at_one,
    |db: TestDb| async move {
        let store = open(&db).await;
        for i in 1..=3 {
            let m = store.insert(new("lobby", &format!("l{i}"))).await.unwrap();
            assert!(m.created);
            assert_eq!(m.message.seq, i);
        }
        let other = store.insert(new("other", "o1")).await.unwrap();
        assert_eq!(other.message.seq, 1);
        assert_eq!(store.head(&RoomId::lobby()).await.unwrap(), 3);
        assert_eq!(
            store.head(&RoomId::parse("empty").unwrap()).await.unwrap(),
            0
        );
    }
);

both_backends!(the_same_id_is_stored_once, |db: TestDb| async move {
    let store = open(&db).await;
    let first = new("lobby", "once");
    let a = store.insert(first.clone()).await.unwrap();
    let b = store.insert(first.clone()).await.unwrap();
    assert!(a.created);
    assert!(!b.created);
    assert_eq!(a.message, b.message);
    // A retry does not use up a seq.
    let next = store.insert(new("lobby", "next")).await.unwrap();
    assert_eq!(next.message.seq, a.message.seq + 1);
});

both_backends!(
    concurrent_posters_get_gapless_seqs,
    |db: TestDb| async move {
        let store = open(&db).await;
        let posters = 16;
        let each = 10;
        let mut tasks = Vec::new();
        for p in 0..posters {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..each {
                    let msg = new("busy", &format!("p{p}-{i}"));
                    // Every third post is retried at once, as after a timeout.
                    if i % 3 == 0 {
                        let (a, b) =
                            tokio::join!(store.insert(msg.clone()), store.insert(msg.clone()));
                        let (a, b) = (a.unwrap(), b.unwrap());
                        assert_eq!(a.message, b.message);
                        assert!(a.created != b.created, "exactly one of them stored it");
                        seqs.push(a.message.seq);
                    } else {
                        seqs.push(store.insert(msg).await.unwrap().message.seq);
                    }
                }
                seqs
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_unstable();
        let expected: Vec<i64> = (1..=(posters * each) as i64).collect();
        assert_eq!(all, expected, "seqs must be exactly 1..N");
        let stored = store
            .list(&ListQuery::after(RoomId::parse("busy").unwrap(), 0, 200))
            .await
            .unwrap();
        assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), expected);
        let ids: HashSet<_> = stored.iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), stored.len());
    }
);

both_backends!(pages, |db: TestDb| async move {
    let store = open(&db).await;
    for i in 1..=10 {
        store.insert(new("lobby", &format!("m{i}"))).await.unwrap();
    }
    let seqs = |v: Vec<app::domain::Message>| v.into_iter().map(|m| m.seq).collect::<Vec<_>>();
    let lobby = RoomId::lobby();
    assert_eq!(
        seqs(
            store
                .list(&ListQuery::latest(lobby.clone(), 3))
                .await
                .unwrap()
        ),
        vec![8, 9, 10]
    );
    assert_eq!(
        seqs(
            store
                .list(&ListQuery::after(lobby.clone(), 7, 50))
                .await
                .unwrap()
        ),
        vec![8, 9, 10]
    );
    assert_eq!(
        seqs(
            store
                .list(&ListQuery::after(lobby.clone(), 2, 2))
                .await
                .unwrap()
        ),
        vec![3, 4]
    );
    let before = ListQuery {
        before: Some(5),
        ..ListQuery::latest(lobby.clone(), 2)
    };
    assert_eq!(seqs(store.list(&before).await.unwrap()), vec![3, 4]);
    let window = ListQuery {
        before: Some(6),
        ..ListQuery::after(lobby.clone(), 2, 50)
    };
    assert_eq!(seqs(store.list(&window).await.unwrap()), vec![3, 4, 5]);
    // Text survives the round trip exactly.
    let m = store
        .insert(new("lobby", "日本語 🌸\n<b>x</b>"))
        .await
        .unwrap()
        .message;
    let back = store.list(&ListQuery::after(lobby, 10, 1)).await.unwrap();
    assert_eq!(back[0], m);
    assert_eq!(back[0].content, "日本語 🌸\n<b>x</b>");
});

#[tokio::test]
async fn unknown_schemes_are_refused() {
    let err = match store::open("mysql://localhost/chat", &PoolOptions::default()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("mysql must be refused"),
    };
    assert!(err.contains("DATABASE_URL"), "{err}");
}

both_backends!(
    a_burst_into_several_rooms_keeps_each_room_gapless,
    |db: TestDb| async move {
        // Enough at once for PostgreSQL to group them into batches.
        let store = open(&db).await;
        let rooms = ["burst-a", "burst-b", "burst-c"];
        let tasks: Vec<_> = (0..600)
            .map(|i| {
                let store = store.clone();
                let room = rooms[i % rooms.len()];
                tokio::spawn(async move { store.insert(new(room, &format!("n{i}"))).await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap().created);
        }
        for room in rooms {
            let room = RoomId::parse(room).unwrap();
            let mut seqs = Vec::new();
            let mut after = 0;
            loop {
                let page = store
                    .list(&ListQuery::after(room.clone(), after, 200))
                    .await
                    .unwrap();
                let Some(last) = page.last() else { break };
                after = last.seq;
                seqs.extend(page.iter().map(|m| m.seq));
            }
            assert_eq!(seqs, (1..=200).collect::<Vec<i64>>(), "{room}");
            assert_eq!(store.head(&room).await.unwrap(), 200);
        }
    }
);
