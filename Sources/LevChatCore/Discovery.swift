/// What a host advertises over DNS-SD (Docs/PROTOCOL.md, "Discovery"): one instance per (room, host), and a small TXT
/// record with no code, no names and nothing secret.
public struct RoomAdvertisement: Hashable, Sendable {
    public static let serviceType = "_levchat._tcp"
    public static let txtVersion = "2"

    public var instanceName: String
    public var roomID: RoomID
    public var epoch: Int
    public var versions: VersionRange
    public var port: Int

    public init(room: RoomID, host: NodeID, epoch: Int, port: Int, versions: VersionRange = ProtocolVersion.range) {
        roomID = room
        self.epoch = epoch
        self.versions = versions
        self.port = port
        instanceName = RoomAdvertisement.instanceName(room: room, host: host)
    }

    /// `lc-<room id>-<first 8 hex digits of the host's node id>`: a new host never collides with
    /// the old host's record still in caches.
    public static func instanceName(room: RoomID, host: NodeID) -> String {
        "lc-\(room.hex)-\(host.hex.prefix(8))"
    }

    /// `txtvers=2 pv=2-2 rid=<room id> ep=<epoch>`: nothing derived from the code, so the record
    /// lets nobody test a guess of it (Docs/THREAT-MODEL.md).
    public var txtRecord: [String] {
        ["txtvers=\(Self.txtVersion)", "pv=\(versions.min)-\(versions.max)", "rid=\(roomID.hex)", "ep=\(epoch)"]
    }

    /// Reads a discovered service's TXT pairs. Nil for anything that is not a well-formed room of a
    /// TXT version we know: junk advertisements are skipped, never trusted.
    public init?(instanceName: String, port: Int, txt: [String: String]) {
        guard txt["txtvers"] == Self.txtVersion,
              let pv = txt["pv"], let dash = pv.firstIndex(of: "-"),
              let low = Int(pv[..<dash]), let high = Int(pv[pv.index(after: dash)...]), low <= high,
              let room = txt["rid"].flatMap(RoomID.init(hex:)),
              let epochText = txt["ep"], epochText.count <= 18, let epoch = Int(epochText), epoch >= 0,
              (1...65535).contains(port)
        else { return nil }
        self.instanceName = instanceName
        roomID = room
        self.epoch = epoch
        self.versions = VersionRange(min: low, max: high)
        self.port = port
    }
}

/// One resolved DNS-SD service instance: where to connect, and its TXT pairs.
public struct DiscoveredService: Hashable, Sendable {
    public var instanceName: String
    public var hostName: String
    /// A literal address; IPv6 link-local ones carry their scope (`fe80::1%lan0`).
    public var address: String
    public var port: Int
    public var txt: [String: String]

    public init(instanceName: String, hostName: String, address: String, port: Int, txt: [String: String]) {
        self.instanceName = instanceName
        self.hostName = hostName
        self.address = address
        self.port = port
        self.txt = txt
    }
}

public enum DiscoveryEvent: Hashable, Sendable {
    case found(DiscoveredService)
    case removed(instanceName: String)
    /// Browsing stopped (the daemon went away).
    case failed(DiscoveryError)
}

public enum DiscoveryError: Error, Hashable, Sendable, CustomStringConvertible {
    /// avahi-daemon is not running (Avahi error -26).
    case daemonNotRunning
    /// The connection to avahi-daemon failed or was lost (Avahi error -23).
    case daemonConnectionFailed
    case other(code: Int32, message: String)
    /// The embedded responder (no daemon) found no interface that is up and can multicast.
    case noMulticastInterface
    /// The embedded responder could not open UDP 5353 on any interface (why).
    case multicastSocket(String)

    public var description: String {
        switch self {
        case .noMulticastInterface: "no network interface here can multicast"
        case .multicastSocket(let why): "UDP port 5353 could not be opened (\(why))"
        case .daemonNotRunning: "avahi-daemon is not running"
        case .daemonConnectionFailed: "the connection to avahi-daemon failed"
        case .other(let code, let message): "Avahi error \(code): \(message)"
        }
    }
}

/// Advertising and finding rooms. The Avahi implementation lives in LevChatAvahi; tests of the
/// room logic can use a fake.
public protocol RoomDiscovery: Sendable {
    /// Starts advertising; the returned handle withdraws it (a new epoch is a new advertisement). Keeps advertising across
    /// daemon restarts.
    func advertise(_ advertisement: RoomAdvertisement) async throws(DiscoveryError) -> any RoomAdvertising
    /// Services of `RoomAdvertisement.serviceType` as they appear and disappear.
    func browse() async throws(DiscoveryError) -> AsyncStream<DiscoveryEvent>
}

public protocol RoomAdvertising: Sendable {
    /// Keeps the advertisement up (re-registering it when the daemon comes back) until cancelled;
    /// run it beside the room.
    func supervise() async
    /// Removes the advertisement; other hosts see it go within about a second.
    func withdraw() async
}
