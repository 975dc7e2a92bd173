import LevChatCore

/// The room's mDNS advertisement, kept by whichever peer hosts (Docs/MIGRATION.md): published
/// when this peer becomes host, kept up while it hosts, withdrawn when it hands the room on or
/// leaves. A peer that joined with `--peer` never advertises (`enabled` false).
actor RoomAdvertiser {
    let enabled: Bool
    private var current: (any RoomAdvertising)?
    private let discovery: any RoomDiscovery
    private let console: Console

    /// `current`: the advertisement `create` already published, if any.
    init(enabled: Bool, current: (any RoomAdvertising)?, discovery: any RoomDiscovery, console: Console) {
        self.enabled = enabled
        self.current = current
        self.discovery = discovery
        self.console = console
    }

    /// Replaces the advertisement with this host's at `epoch`; a failure is told to the user, and
    /// the room goes on (its members know the host's endpoints).
    func advertise(room: RoomID, host: NodeID, epoch: Int, port: Int) async {
        await withdraw()
        guard enabled else { return }
        do {
            current = try await discovery.advertise(RoomAdvertisement(room: room, host: host, epoch: epoch, port: port))
        } catch {
            console.show(.notice("could not advertise the room over mDNS (\(error)); members can still reach this host"))
        }
    }

    /// Keeps the current advertisement up until cancelled (run it beside the room).
    func supervise() async {
        await current?.supervise()
    }

    func withdraw() async {
        await current?.withdraw()
        current = nil
    }
}
