import CAvahi
import LevChatCore

/// The raw handles of one Avahi client: a threaded poll and the client on it.
///
/// Locking rule: every `avahi_*` call on these handles, and on anything made from them (entry
/// groups, browsers, resolvers), happens either on the poll's own thread inside an Avahi callback,
/// where Avahi already holds the poll lock, or inside `withLock`. That lock is what makes sharing
/// this class across threads safe, hence `@unchecked Sendable`.
final class AvahiConnection: @unchecked Sendable {
    private let poll: OpaquePointer
    private(set) var client: OpaquePointer?
    private var closed = false

    /// Connects to avahi-daemon. With `waitForDaemon` the client rides out daemon restarts
    /// (`AVAHI_CLIENT_NO_FAIL`); without, a missing daemon is an error at once.
    init(waitForDaemon: Bool, context: UnsafeMutableRawPointer?, callback: AvahiClientCallback) throws(DiscoveryError) {
        // Everything on locals first: properties are set only on success, so a throwing init never
        // reaches deinit with half-freed handles.
        guard let poll = avahi_threaded_poll_new() else {
            throw .other(code: Int32(AVAHI_ERR_NO_MEMORY), message: "could not create the Avahi poll")
        }
        var error: Int32 = 0
        let flags = waitForDaemon ? AVAHI_CLIENT_NO_FAIL : AvahiClientFlags(rawValue: 0)
        guard let client = avahi_client_new(avahi_threaded_poll_get(poll), flags, callback, context, &error) else {
            avahi_threaded_poll_free(poll)
            throw DiscoveryError(avahiError: error)
        }
        guard avahi_threaded_poll_start(poll) == 0 else {
            avahi_client_free(client)
            avahi_threaded_poll_free(poll)
            throw .other(code: Int32(AVAHI_ERR_FAILURE), message: "could not start the Avahi poll thread")
        }
        self.poll = poll
        self.client = client
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        avahi_threaded_poll_lock(poll)
        defer { avahi_threaded_poll_unlock(poll) }
        return try body()
    }

    /// Stops the poll thread, then frees the client (which frees its groups and browsers, so the
    /// daemon withdraws what they published). Never call from an Avahi callback.
    func close() {
        guard !closed else { return }
        closed = true
        avahi_threaded_poll_stop(poll)
        if let client { avahi_client_free(client) }
        client = nil
        avahi_threaded_poll_free(poll)
    }

    deinit { close() }
}

extension DiscoveryError {
    init(avahiError code: Int32) {
        switch code {
        case Int32(AVAHI_ERR_NO_DAEMON): self = .daemonNotRunning
        case Int32(AVAHI_ERR_DISCONNECTED): self = .daemonConnectionFailed
        default: self = .other(code: code, message: String(cString: avahi_strerror(code)))
        }
    }
}
