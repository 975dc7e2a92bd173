import LevChatCore
import LevChatTransport
import Logging
import Synchronization

/// Collects the rooms advertised on the network and offers their addresses to try, one room after
/// another. Nothing in an advertisement says whose code it takes (Docs/THREAT-MODEL.md), so every
/// room is a candidate and the join handshake decides: a room whose host cannot prove our code is
/// "not this room", and the joiner moves on. Each room is offered by its best instance first
/// (highest epoch), each instance's addresses IPv4 first, then IPv6, link-local last.
public final class RoomFinder: Sendable {
    struct Candidate {
        var advertisement: RoomAdvertisement
        var addresses: [String]
        var order: Int
    }

    struct State {
        var candidates: [String: Candidate] = [:]
        var tried: Set<String> = []
        /// Instances whose host refused the code: none of their addresses is offered again. Per
        /// instance (one host), never per room id: anyone can advertise a copy of a room's id, and
        /// that must not hide the real room.
        var notOurs: Set<String> = []
        /// The rooms (by advertised id) whose host refused the code: what a joiner with a wrong
        /// code is told ("none of the 2 rooms"), however many addresses each was tried at.
        var refusedRooms: Set<RoomID> = []
        /// The advertising addresses of each candidate instance, for the budgets below.
        var sources: [String: Set<String>] = [:]
        var seen = 0
        /// Rooms past the budgets were ignored, and the user told so (once: a LAN that advertises
        /// thousands of rooms would print thousands of lines).
        var toldIgnored = false

        func rooms(from source: String? = nil) -> Set<RoomID> {
            Set(candidates.filter { source == nil || sources[$0.key]?.contains(source!) == true }.map(\.value.advertisement.roomID))
        }
    }

    /// Each room costs a joiner one handshake (about a millisecond). A flood of fake rooms must
    /// neither make joining slow nor crowd out the real room: each advertising address gets a
    /// budget of its own, counting the rooms it advertises now (a withdrawn room frees its place).
    /// A machine may honestly host several rooms (a shared server, rooms made one after another).
    static let maximumRooms = 64
    static let maximumRoomsPerSource = 16

    private let logger: Logger
    private let state = Mutex(State())

    public init(logger: Logger) {
        self.logger = logger
    }

    /// Feeds discovery events until the stream ends.
    /// Takes discovery's events until they end; `changed` after each.
    public func consume(_ events: AsyncStream<DiscoveryEvent>, changed: @Sendable () -> Void = {}) async {
        for await event in events {
            switch event {
            case .found(let service): consider(service)
            case .removed(let name): state.withLock { _ = $0.candidates.removeValue(forKey: name); $0.sources[name] = nil }
            case .failed(let error): logger.notice("browsing stopped: \(error)")
            }
            changed()
        }
    }

    func consider(_ service: DiscoveredService) {
        guard let advertisement = RoomAdvertisement(instanceName: service.instanceName, port: service.port, txt: service.txt) else {
            logger.debug("ignoring \(service.instanceName): not a room advertisement we understand")
            return
        }
        guard advertisement.versions.negotiate(with: ProtocolVersion.range) != nil else {
            logger.debug("ignoring \(service.instanceName): incompatible protocol version")
            return
        }
        let endpoint = Endpoint.format(host: service.address, port: service.port)
        let accepted = state.withLock { s -> Bool in
            let room = advertisement.roomID
            if !s.rooms(from: service.address).contains(room) {
                let all = s.rooms()
                guard all.contains(room) || all.count < RoomFinder.maximumRooms,
                      s.rooms(from: service.address).count < RoomFinder.maximumRoomsPerSource else { return false }
            }
            s.sources[service.instanceName, default: []].insert(service.address)
            s.seen += 1
            var candidate = s.candidates[service.instanceName] ?? Candidate(advertisement: advertisement, addresses: [], order: s.seen)
            candidate.advertisement = advertisement
            if !candidate.addresses.contains(endpoint) { candidate.addresses.append(endpoint) }
            s.candidates[service.instanceName] = candidate
            return true
        }
        if !accepted {
            let first = state.withLock { s in
                defer { s.toldIgnored = true }
                return !s.toldIgnored
            }
            let more = first ? " (more such rooms are ignored without a word)" : ""
            logger.log(level: first ? .notice : .info, "ignoring \(service.instanceName) from \(service.address): too many different rooms to try\(more)")
        }
    }

    /// The best address not tried yet, if any now: rooms in the order they appeared, within a
    /// room its highest epoch first.
    public func nextEndpoint() -> String? {
        state.withLock { s in
            // A room's place is when its first instance was seen.
            var firstSeen: [RoomID: Int] = [:]
            for candidate in s.candidates.values {
                firstSeen[candidate.advertisement.roomID] = min(firstSeen[candidate.advertisement.roomID] ?? .max, candidate.order)
            }
            let ordered = s.candidates.values.sorted {
                let (a, b) = (firstSeen[$0.advertisement.roomID]!, firstSeen[$1.advertisement.roomID]!)
                return a != b ? a < b : $0.advertisement.epoch > $1.advertisement.epoch
            }
            for candidate in ordered where !s.notOurs.contains(candidate.advertisement.instanceName) {
                let addresses = candidate.addresses.sorted { RoomFinder.preference($0) < RoomFinder.preference($1) }
                if let next = addresses.first(where: { !s.tried.contains($0) }) {
                    s.tried.insert(next)
                    return next
                }
            }
            return nil
        }
    }

    /// The host at `endpoint` refused the code: its room is another one, and none of that host's
    /// other addresses is worth a try. (Other instances with the same room id are still tried: the
    /// refusing one may be a copy.)
    public func notThisRoom(_ endpoint: String) {
        state.withLock { s in
            for (name, candidate) in s.candidates where candidate.addresses.contains(endpoint) {
                s.notOurs.insert(name)
                s.refusedRooms.insert(candidate.advertisement.roomID)
            }
        }
    }

    /// How many rooms refused the code so far: a room tried at its IPv4 and IPv6 addresses at
    /// once is one room (it was counted once for each address).
    public var roomsThatRefused: Int { state.withLock { $0.refusedRooms.count } }

    /// Whether every instance at `endpoint` refused the code (so the endpoint is not worth a try).
    public func isExcluded(_ endpoint: String) -> Bool {
        state.withLock { s in
            let holders = s.candidates.filter { $0.value.addresses.contains(endpoint) }.map(\.key)
            return !holders.isEmpty && holders.allSatisfy { s.notOurs.contains($0) }
        }
    }

    static func preference(_ endpoint: String) -> Int {
        if !endpoint.hasPrefix("[") { return 0 }
        return endpoint.lowercased().hasPrefix("[fe80") ? 2 : 1
    }
}
