import LevChatCore

/// What the user sees of files (Docs/CLI.md, "Files"): offers and transfers, either side. Both
/// renderers switch over every case.
enum FileEvent: Sendable {
    /// An offer seen for the first time (live, or in the history shown on joining).
    case offered(FileBoard.Entry, replayed: Bool, own: Bool)
    /// Offers that ended because their sender is gone.
    case ended([FileBoard.Entry], why: String)
    /// Offers that had ended and are open again: their sender (the same key) is back in the room.
    case reopened([FileBoard.Entry])
    /// `/files`.
    case list([FileBoard.Entry])
    /// A fetch under way: from the start, or resuming a `.part` at `offset`.
    case started(FileBoard.Entry, offset: Int)
    case progress(FileBoard.Entry, bytes: Int, rate: Double)
    /// The whole file, its SHA-256 matching the offer, at `path`.
    case received(FileBoard.Entry, path: String)
    /// This peer's file went whole to `to` (the member whose key signed the fetch, when known) at
    /// `address`.
    case sent(name: String, id: Int?, to: String?, address: String)
    /// This peer's own offer going out to one fetcher (`to`: its name, else its address). `row`
    /// keys its status row, one per link: several members may fetch one offer at once.
    case sending(FileBoard.Entry, to: String, row: Int, bytes: Int, rate: Double)
    /// Sending to one fetcher is over. `stopped` says why when it stopped short; when every byte
    /// went out it is nil, and `sent` (or the fetcher's word that other bytes arrived) follows.
    case sendEnded(FileBoard.Entry, to: String, row: Int, bytes: Int, stopped: String?)
    /// A transfer stopped; `resumable` when `/get` takes it up from the `.part`.
    case failed(id: Int, name: String, reason: String, resumable: Bool)
    case cancelled(id: Int, name: String)
}
