import CAvahi
import LevChatCore
import Logging
import Synchronization

/// Publishes one room instance and keeps it published: it re-registers under a new name on a
/// collision, and again when avahi-daemon comes back after a restart.
final class AvahiAdvertiser: RoomAdvertising, @unchecked Sendable {
    /// Guarded by the poll lock (see `AvahiConnection`); C callbacks reach it through `userdata`.
    final class State: @unchecked Sendable {
        var advertisement: RoomAdvertisement
        var name: String
        var group: OpaquePointer?
        /// The daemon said the room is published (since the last registration).
        var established = false
        let logger: Logger
        /// Daemon lost for good (client FAILURE): the owner reconnects.
        let failures: AsyncStream<Int32>.Continuation

        init(_ advertisement: RoomAdvertisement, logger: Logger, failures: AsyncStream<Int32>.Continuation) {
            self.advertisement = advertisement
            name = advertisement.instanceName
            self.logger = logger
            self.failures = failures
        }

        var pointer: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

        func clientChanged(_ client: OpaquePointer, _ state: AvahiClientState) {
            logger.debug("avahi client state \(state.rawValue)")
            switch state {
            case AVAHI_CLIENT_S_RUNNING:
                register(client)
            case AVAHI_CLIENT_S_COLLISION, AVAHI_CLIENT_S_REGISTERING:
                // The daemon's host name is being (re)negotiated; publish again once it runs.
                if let group { avahi_entry_group_reset(group) }
            case AVAHI_CLIENT_CONNECTING:
                logger.notice("avahi-daemon went away; the room stays open and is advertised again when it is back")
                dropGroup()
            case AVAHI_CLIENT_FAILURE:
                dropGroup()
                failures.yield(avahi_client_errno(client))
            default:
                break
            }
        }

        func groupChanged(_ group: OpaquePointer, _ state: AvahiEntryGroupState) {
            switch state {
            case AVAHI_ENTRY_GROUP_ESTABLISHED:
                established = true
                logger.info("advertised as \(name)")
            case AVAHI_ENTRY_GROUP_COLLISION:
                rename()
                if let client = avahi_entry_group_get_client(group) { register(client) }
            case AVAHI_ENTRY_GROUP_FAILURE:
                logger.warning("advertising failed: \(String(cString: avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(group)))))")
            default:
                break
            }
        }

        /// (Re)publishes the service with the current TXT record.
        func register(_ client: OpaquePointer) {
            established = false
            if group == nil { group = avahi_entry_group_new(client, advertiserGroupCallback, pointer) }
            guard let group else {
                logger.warning("could not create an Avahi entry group: \(String(cString: avahi_strerror(avahi_client_errno(client))))")
                return
            }
            avahi_entry_group_reset(group)
            for _ in 0..<10 {
                let result = addService(to: group)
                if result == Int32(AVAHI_ERR_COLLISION) {
                    rename()
                    continue
                }
                if result < 0 {
                    logger.warning("could not advertise the room: \(String(cString: avahi_strerror(result)))")
                    return
                }
                avahi_entry_group_commit(group)
                return
            }
        }

        private func addService(to group: OpaquePointer) -> Int32 {
            var list: UnsafeMutablePointer<AvahiStringList>?
            for entry in advertisement.txtRecord.reversed() { list = avahi_string_list_add(list, entry) }
            defer { avahi_string_list_free(list) }
            return avahi_entry_group_add_service_strlst(
                group, AvahiIfIndex(AVAHI_IF_UNSPEC), AvahiProtocol(AVAHI_PROTO_UNSPEC), AvahiPublishFlags(rawValue: 0),
                name, RoomAdvertisement.serviceType, nil, nil, UInt16(advertisement.port), list)
        }

        private func rename() {
            guard let alternative = avahi_alternative_service_name(name) else { return }
            let next = String(cString: alternative)
            avahi_free(alternative)
            logger.notice("the name \(name) is taken on the network; advertising as \(next)")
            name = next
        }

        func dropGroup() {
            if let group { avahi_entry_group_free(group) }
            group = nil
            established = false
        }
    }

    private let state: State
    private let failures: AsyncStream<Int32>
    /// The client publishing now (nil while avahi-daemon is gone), and whether the room was
    /// withdrawn: a reconnect that lands after that closes what it made at once.
    private let connection = Mutex<(current: AvahiConnection?, withdrawn: Bool)>((nil, false))
    private let logger: Logger
    /// How often a lost daemon is looked for again (see `reconnect`).
    static let retryInterval: Duration = .seconds(2)
    /// How long a connection may take to publish the room before it is made again (see
    /// `watchPublishing`).
    static let publishDeadline: Duration = .seconds(10)
    /// A connection made (the first, or again after a loss): the watch starts its deadline.
    private let (connected, connectedContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

    /// Fails at once, with a sentence-ready error, when avahi-daemon is not there.
    init(_ advertisement: RoomAdvertisement, logger: Logger) throws(DiscoveryError) {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        failures = stream
        self.logger = logger
        state = State(advertisement, logger: logger, failures: continuation)
        let first = try AvahiConnection(waitForDaemon: false, context: state.pointer, callback: advertiserClientCallback)
        connection.withLock { $0.current = first }
        connectedContinuation.yield()
    }

    /// Reconnects after the client fails for good (until cancelled). With a working daemon this
    /// loop only waits.
    func supervise() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.watchPublishing() }
            for await code in failures {
                if code == Int32(AVAHI_ERR_TIMEOUT) {
                    logger.notice("avahi-daemon has not published the room \(Self.publishDeadline) after taking it; connecting to it again")
                } else {
                    logger.notice("lost avahi-daemon (\(DiscoveryError(avahiError: code))); advertising again when it is back")
                }
                if let lost = connection.withLock({ $0.current.take() }) {
                    lost.withLock { state.dropGroup() }
                    lost.close()
                }
                await reconnect()
            }
            // Withdrawn or cancelled: the watch may be in its deadline's sleep.
            connectedContinuation.finish()
            group.cancelAll()
        }
    }

    /// A connection that has not published the room within `publishDeadline` is made again, as a
    /// lost one is. Seen once in a fault soak: after its daemon's second restart in a minute, a
    /// host's new client never published, and joiners on that machine found no room for the rest
    /// of the run; why the client stuck is not known, so the cure is general.
    private func watchPublishing() async {
        for await _ in connected {
            try? await Task.sleep(for: Self.publishDeadline)
            guard !Task.isCancelled else { return }
            // Under the connection's mutex, so that nothing closes it meanwhile (the poll lock is
            // never held while taking that mutex: no deadlock).
            let published = connection.withLock { connection -> Bool in
                guard !connection.withdrawn, let current = connection.current else { return true }
                return current.withLock { state.established }
            }
            if !published { state.failures.yield(Int32(AVAHI_ERR_TIMEOUT)) }
        }
    }

    /// Connects again once avahi-daemon answers, trying a plain connection every `retryInterval`
    /// until one is made, the room is withdrawn or the task is cancelled. Avahi's own wait
    /// (`AVAHI_CLIENT_NO_FAIL`, which listens for the daemon's D-Bus name) is not enough: it gives
    /// no client at all when the dead daemon's name is not yet released (`avahi_client_new` then
    /// fails even so), and in one fault soak a client waiting on it never connected though the
    /// daemon was back, leaving the room unadvertised (Docs/TESTING.md, "The fault soak").
    private func reconnect() async {
        while !Task.isCancelled, !connection.withLock({ $0.withdrawn }) {
            if let fresh = try? AvahiConnection(waitForDaemon: false, context: state.pointer, callback: advertiserClientCallback) {
                let late = connection.withLock { connection -> AvahiConnection? in
                    guard !connection.withdrawn else { return fresh }
                    connection.current = fresh
                    return nil
                }
                if let late {
                    late.withLock { state.dropGroup() }
                    late.close()
                } else {
                    connectedContinuation.yield()
                }
                return
            }
            try? await Task.sleep(for: Self.retryInterval)
        }
    }

    func withdraw() async {
        state.failures.finish()
        connectedContinuation.finish()
        guard let current = connection.withLock({ connection -> AvahiConnection? in
            connection.withdrawn = true
            return connection.current.take()
        }) else { return }
        current.withLock { state.dropGroup() }
        current.close()
    }
}

private let advertiserClientCallback: AvahiClientCallback = { client, state, userdata in
    guard let client, let userdata else { return }
    Unmanaged<AvahiAdvertiser.State>.fromOpaque(userdata).takeUnretainedValue().clientChanged(client, state)
}

private let advertiserGroupCallback: AvahiEntryGroupCallback = { group, state, userdata in
    guard let group, let userdata else { return }
    Unmanaged<AvahiAdvertiser.State>.fromOpaque(userdata).takeUnretainedValue().groupChanged(group, state)
}
