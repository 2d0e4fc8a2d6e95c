import DiskImage
import FileSystems

/// A directory in some filesystem: one layer of a merged (overlay) directory.
public struct Layer {
    public let reader: any FileSystemReader
    public let inode: UInt64
    /// Identifies the reader (hardlink identity is per filesystem).
    public let filesystem: ObjectIdentifier

    public init(reader: any FileSystemReader, inode: UInt64) {
        self.reader = reader
        self.inode = inode
        self.filesystem = ObjectIdentifier(reader)
    }
}

/// overlayfs semantics over directory layers (top first), shared by overlay mounts in the
/// assembled namespace and by Docker container and image exports:
/// - an upper entry hides the same name below;
/// - a character device 0:0 (a whiteout) hides the name and shows nothing;
/// - a directory with `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) hides everything
///   below it;
/// - whiteouts and overlay's own xattrs do not appear in the merged view.
public enum OverlayMerge {
    /// What a name resolves to in a merged directory.
    public enum Child {
        /// A non-directory (from the topmost layer that has the name).
        case file(Layer, DirectoryEntry, Metadata)
        /// A directory, with the layers that make it up (top first).
        case directory([Layer], Metadata)
    }

    public static func isWhiteout(_ m: Metadata) -> Bool {
        m.type == .characterDevice && m.device == DeviceNumber(major: 0, minor: 0)
    }

    public static func isOpaque(_ m: Metadata) -> Bool {
        m.type == .directory && (m.xattr("trusted.overlay.opaque") == [0x79] || m.xattr("user.overlay.opaque") == [0x79])
    }

    /// The metadata shown for a merged entry: overlay's private xattrs removed.
    public static func visible(_ m: Metadata) -> Metadata {
        var m = m
        m.xattrs.removeAll { $0.name.hasPrefix("trusted.overlay.") || $0.name.hasPrefix("user.overlay.") }
        return m
    }

    /// The merged children of a directory made of `layers`, sorted by name. Unreadable layers
    /// and entries are reported through `problem` and skipped.
    public static func children(of layers: [Layer], problem: (String, Error) -> Void) -> [(name: [UInt8], child: Child)] {
        struct Pending {
            var child: Child
            /// No lower layer contributes any more (a non-directory, or an opaque directory).
            var closed: Bool
            /// The directory's metadata is a default so far (every layer's directory was implied).
            var implied = false
        }
        var decided: [[UInt8]: Pending] = [:]
        var whiteouts = Set<[UInt8]>()
        for (depth, layer) in layers.enumerated() {
            let entries: [DirectoryEntry]
            do {
                entries = try layer.reader.directoryEntries(of: layer.inode)
            } catch {
                problem("overlay layer \(depth)", error)
                continue
            }
            for entry in entries where !whiteouts.contains(entry.name) {
                // "." and "..", and names no path can carry (a corrupt directory): skipped.
                if entry.name == [0x2E] || entry.name == [0x2E, 0x2E] { continue }
                if entry.name.isEmpty || entry.name.contains(0x2F) || entry.name.contains(0) {
                    problem("entry with an invalid name \(entry.name) (inode \(entry.inode)) skipped", FWError(.corrupt, "invalid name"))
                    continue
                }
                if let pending = decided[entry.name], pending.closed { continue }
                let meta: Metadata
                do {
                    meta = try layer.reader.metadata(of: entry.inode)
                } catch {
                    problem(String(decoding: entry.name, as: UTF8.self), error)
                    continue
                }
                if let pending = decided[entry.name] {
                    // An open directory above merges with a directory here; anything else below
                    // it is hidden.
                    guard case .directory(var dirLayers, let top) = pending.child, meta.type == .directory else { continue }
                    dirLayers.append(Layer(reader: layer.reader, inode: entry.inode))
                    // A directory implied above (a tar member's parent no member lists) shows the
                    // metadata of the first directory below with a record of its own.
                    let implied = pending.implied && layer.reader.isImpliedDirectory(entry.inode)
                    decided[entry.name] = Pending(child: .directory(dirLayers, pending.implied ? meta : top), closed: isOpaque(meta),
                                                  implied: implied)
                    continue
                }
                if isWhiteout(meta) {
                    whiteouts.insert(entry.name)
                } else if meta.type == .directory {
                    decided[entry.name] = Pending(child: .directory([Layer(reader: layer.reader, inode: entry.inode)], meta),
                                                  closed: isOpaque(meta), implied: layer.reader.isImpliedDirectory(entry.inode))
                } else {
                    decided[entry.name] = Pending(child: .file(layer, entry, meta), closed: true)
                }
            }
        }
        return decided.map { ($0.key, $0.value.child) }.sorted { $0.name.lexicographicallyPrecedes($1.name) }
    }
}
