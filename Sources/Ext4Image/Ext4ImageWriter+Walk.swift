import DiskImage
import FileSystems

/// The walk-to-ext4 loop, here beside the writer as `Archiver` is beside the tar writer: the
/// facade picks a walk and an output; it does not write the loop.
extension Ext4ImageWriter {
    /// What writing a walk left out.
    public struct WalkSummary: Sendable {
        /// Entries written (the root included).
        public var members = 0
        /// Device nodes left out (`dropDevices`).
        public var droppedDevices: [String] = []
        /// What the walk met (unreadable directories, loops cut), then what reading the files met
        /// (`FileContents.warnings`).
        public var problems: [WalkProblem] = []
    }

    /// Writes every entry of `walk` (parents come first). `check` runs before each entry (a
    /// cancellation throws from it); `written` is told of each entry written.
    public func add<Walk: EntryWalk>(walk: inout Walk, dropDevices: Bool, check: () throws -> Void,
                                     written: (WalkEntry) -> Void = { _ in }) throws -> WalkSummary {
        var summary = WalkSummary()
        var contentProblems: [WalkProblem] = []
        while let item = walk.next() {
            try check()
            let m = item.metadata
            if dropDevices, m.type == .characterDevice || m.type == .blockDevice {
                summary.droppedDevices.append(item.displayPath)
                continue
            }
            var opened: (any FileContents)?
            try add(path: item.path, metadata: m, hardlinkTarget: item.hardlinkTarget,
                    contents: { let file = try item.reader.openFile(m.inode); opened = file; return file },
                    mayLinkAgain: item.reader.mayAppearAgain(m.inode))
            // Read problems that did not stop the read (a btrfs data checksum mismatch): the
            // bytes are in the image as stored, the problem is the entry's.
            for w in opened?.warnings ?? [] {
                contentProblems.append(WalkProblem(path: item.displayPath, error: FWError(.corrupt, w)))
            }
            summary.members += 1
            written(item)
        }
        summary.problems = walk.problems + contentProblems
        return summary
    }

    /// Writes the members of a tar (or any filesystem) on top of what is there, as penguin
    /// appends its igloo files: a non-directory replaces the entry at its path, a directory only
    /// gets the member's metadata; the tree's own root ("./") does not change the image's.
    /// Returns the members written and the walk's problems.
    public func add(tree reader: any FileSystemReader, check: () throws -> Void) throws -> (members: Int, problems: [WalkProblem]) {
        var walk = TreeWalk(reader)
        var added = 0
        // Directories made by an earlier tar may hold names this one replaces.
        madeWhileAppending = []
        while let item = walk.next() {
            try check()
            if item.path.isEmpty { continue }
            // A directory the tar only implies keeps the metadata of one already in the image.
            try add(path: item.path, metadata: item.metadata, hardlinkTarget: item.hardlinkTarget,
                    contents: { try reader.openFile(item.metadata.inode) }, replace: true,
                    mayLinkAgain: reader.mayAppearAgain(item.metadata.inode),
                    keepDirectory: item.metadata.type == .directory && reader.isImpliedDirectory(item.metadata.inode))
            added += 1
        }
        return (added, walk.problems)
    }
}
