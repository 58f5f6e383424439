//! `novum_db::gap_cursor::GapCursor`, the reader's place in a table of
//! generated ids shared by the host-state change log and the notification
//! outbox: each id read once, gaps waited for, then given up.

use std::time::Instant;

use novum_db::gap_cursor::{DEFAULT_PATIENCE, GapCursor};

#[test]
fn reads_each_id_once_and_waits_for_gaps() {
    let start = Instant::now();
    let mut cursor = GapCursor::at(10, DEFAULT_PATIENCE);
    assert_eq!(cursor.advance(&[11, 12], start), vec![11, 12]);
    assert_eq!(cursor.floor(), 12);
    // 14 is visible before 13 commits: the floor stays below 13.
    assert_eq!(cursor.advance(&[14], start), vec![14]);
    assert_eq!(cursor.floor(), 12);
    assert_eq!(cursor.gaps(), vec![13]);
    assert_eq!(cursor.top(), 14);
    assert!(cursor.was_read(14) && !cursor.was_read(13));
    // Read again from 12: 14 is not new, 13 is.
    assert_eq!(cursor.advance(&[13, 14], start), vec![13]);
    assert_eq!(cursor.floor(), 14);
    assert_eq!(cursor.top(), 14);
    assert!(cursor.gaps().is_empty());
    // Nothing new: the cursor stays.
    assert!(cursor.advance(&[], start).is_empty());
    assert_eq!(cursor.floor(), 14);
}

#[test]
fn a_gap_read_alone_is_taken_and_new_ids_come_in_order() {
    let start = Instant::now();
    let mut cursor = GapCursor::at(0, DEFAULT_PATIENCE);
    assert_eq!(cursor.advance(&[5, 1, 4], start), vec![1, 4, 5]);
    assert_eq!(cursor.gaps(), vec![2, 3]);
    // A read of the gaps only (nothing new above the top).
    assert_eq!(cursor.advance(&[3], start), vec![3]);
    assert_eq!(cursor.gaps(), vec![2]);
    assert_eq!(cursor.floor(), 1);
    assert_eq!(cursor.advance(&[2], start), vec![2]);
    assert_eq!(cursor.floor(), 5);
    assert!(cursor.gaps().is_empty());
}

#[test]
fn gives_up_on_a_gap_after_its_patience() {
    let start = Instant::now();
    let mut cursor = GapCursor::at(0, DEFAULT_PATIENCE);
    assert_eq!(cursor.advance(&[2, 3], start), vec![2, 3]);
    assert_eq!(cursor.floor(), 0);
    assert_eq!(cursor.gaps(), vec![1]);
    let later = start + DEFAULT_PATIENCE;
    assert!(cursor.advance(&[2, 3], later).is_empty());
    assert_eq!(cursor.floor(), 3);
    assert!(cursor.gaps().is_empty());
}
