import CLinuxExtras
import Glibc

// The few threads of our own (reading stdin, writing the console, a transfer's thread, hashing)
// and the condition they sleep on, straight on pthreads: Foundation's `Thread` and
// `NSCondition` are the only things of Foundation these needed, and full Foundation brings ICU
// (about 40 MB of the static binary) with it. Docs/ARCHITECTURE.md, "Foundation".

/// Starts a detached thread that runs `body` and ends with it.
enum OSThread {
    static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Body(name: name, run: body)).toOpaque()
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { raw in
            let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
            levchat_name_this_thread(body.name)
            body.run()
            return nil
        }, box)
        // Only a machine out of threads or memory refuses, and then nothing could go on.
        precondition(started == 0, "cannot start the thread \(name): error \(started)")
        pthread_detach(thread)
    }

    private final class Body {
        let name: String
        let run: @Sendable () -> Void
        init(name: String, run: @escaping @Sendable () -> Void) {
            self.name = name
            self.run = run
        }
    }
}

/// A mutex with one condition variable, used as `NSCondition` was: lock, wait in a loop on the
/// state it guards, signal or broadcast, unlock.
final class ThreadCondition: @unchecked Sendable {
    // Heap cells: a pthread mutex or condition must not move once in use.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    /// Unlocks, sleeps until signalled (or woken spuriously: always wait in a loop), locks again.
    func wait() { pthread_cond_wait(condition, mutex) }
    func signal() { pthread_cond_signal(condition) }
    func broadcast() { pthread_cond_broadcast(condition) }
}
