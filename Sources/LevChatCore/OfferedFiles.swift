/// The files this user offered, kept across runs (Docs/CLI.md, "Files"), so that a sender killed
/// or restarted in the middle of a transfer serves its offers again once it is back in the room
/// with the same key, and a fetch resumes from its part. A folder is kept the same way: its
/// archive is made from the folder as it is read, so a later run lists it again and serves it
/// while it makes the same bytes (the same length; the fetcher's hash check covers the rest).
///
/// The text: one line per offer, `DAY ROOM PATH OFFER`: the day it was offered (`2026-12-06`),
/// the room's id in hex, the file's path in base64 (a path may hold any byte but NUL), and the
/// offer's record text (`FileOffer.text`). A line that does not read so is dropped; the newest
/// `kept` offers are kept.
public struct OfferedFiles: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var day: String
        public var room: RoomID
        public var path: String
        public var offer: FileOffer

        public init(day: String, room: RoomID, path: String, offer: FileOffer) {
            self.day = day
            self.room = room
            self.path = path
            self.offer = offer
        }
    }

    /// Offers kept, newest last: enough for weeks of sending, and a bounded file to read at start.
    public static let kept = 200

    public private(set) var entries: [Entry] = []

    public init() {}

    public init(parsing text: String) {
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard fields.count == 4, Self.isDay(fields[0]), let room = RoomID(hex: String(fields[1])),
                  let pathBytes = Base64.decode(String(fields[2])), !pathBytes.isEmpty, !pathBytes.contains(0),
                  let offer = FileOffer(text: String(fields[3])) else { continue }
            remember(Entry(day: String(fields[0]), room: room, path: String(decoding: pathBytes, as: UTF8.self), offer: offer))
        }
    }

    public var text: String {
        entries.map { "\($0.day) \($0.room.hex) \(Base64.encode(Array($0.path.utf8))) \($0.offer.text)\n" }.joined()
    }

    /// Keeps `entry`; the oldest go past `kept`. An offer's token is random, so it is kept once.
    public mutating func remember(_ entry: Entry) {
        entries.removeAll { $0.offer.file == entry.offer.file }
        entries.append(entry)
        if entries.count > Self.kept { entries.removeFirst(entries.count - Self.kept) }
    }

    /// The offer of this token made in this room, if this user made it.
    public func entry(file token: String, room: RoomID) -> Entry? {
        entries.last { $0.offer.file == token && $0.room == room }
    }

    private static func isDay(_ text: Substring) -> Bool {
        let utf8 = Array(text.utf8)
        guard utf8.count == 10, utf8[4] == UInt8(ascii: "-"), utf8[7] == UInt8(ascii: "-") else { return false }
        return utf8.enumerated().allSatisfy { index, byte in index == 4 || index == 7 || (48...57).contains(byte) }
    }
}
