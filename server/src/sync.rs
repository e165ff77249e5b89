//! Locks that outlive a panic. Everything this crate guards with a lock is a
//! cache or a table that each write leaves whole (an insert, a removal, a
//! counter), so a task that panicked while holding one leaves nothing half
//! done: the next caller takes the data as it is instead of failing its own
//! request (or every later one) on the poison flag.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_holding_a_lock_does_not_fail_later_callers() {
        let shared = std::sync::Arc::new(Mutex::new(vec![1]));
        let held = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("a task fails while holding the lock");
        })
        .join();
        assert!(shared.is_poisoned());
        lock(&shared).push(2);
        assert_eq!(*lock(&shared), vec![1, 2]);

        let table = std::sync::Arc::new(RwLock::new(0));
        let held = table.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.write().unwrap();
            panic!("a task fails while writing");
        })
        .join();
        *write(&table) += 1;
        assert_eq!(*read(&table), 1);
    }
}
