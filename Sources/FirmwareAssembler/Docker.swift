import Archive
import Assembly
import DiskImage
import DockerState
import FileSystems
import Foundation
import MountPlan

@_exported import struct DockerState.DockerReport
@_exported import struct DockerState.DataRootReport
@_exported import struct DockerState.ImageInfo
@_exported import struct DockerState.ContainerInfo
@_exported import struct DockerState.VolumeInfo
@_exported import struct DockerState.Integrity
@_exported import struct DockerState.Summary
@_exported import struct DockerState.NamespaceInfo
@_exported import struct DockerState.ImageRecord
@_exported import struct DockerState.SnapshotInfo
@_exported import struct DockerState.ContentInfo

extension DockerReport {
    /// The `fwassemble docker --json` document (docs/docker.md).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Containers expected vs found: `expected` is a JSON list of {"name": ..., "image": ...}
    /// (image optional: an id, an id prefix or a tag), or {"containers": [...]}.
    /// Returns human-readable mismatches (empty when everything matches).
    public func compare(expected json: [UInt8]) throws -> [String] {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(json))
        } catch {
            throw FWError(.corrupt, "the expected-containers file is not valid JSON")
        }
        let list = (parsed as? [Any]) ?? ((parsed as? [String: Any])?["containers"] as? [Any])
        guard let list else { throw FWError(.corrupt, "the expected-containers file is not a list of {\"name\", \"image\"}") }
        let found = dataRoots.flatMap { root in root.containers.map { (root, $0) } }
        var mismatches: [String] = []
        var matched = Set<String>()
        for item in list {
            guard let object = item as? [String: Any], let name = object["name"] as? String else {
                throw FWError(.corrupt, "an expected container has no \"name\"")
            }
            let wanted = name.hasPrefix("/") ? String(name.dropFirst()) : name
            guard let (root, c) = found.first(where: { $0.1.name == wanted }) else {
                mismatches.append("missing container \(wanted)")
                continue
            }
            matched.insert(c.id)
            if let image = object["image"] as? String {
                let tags = root.images.first { $0.id == c.image }?.tags ?? []
                let ok = c.image == image || c.image == "sha256:" + image || c.imageTag == image || tags.contains(image)
                    || (image.count >= 4 && c.image.dropFirst(7).hasPrefix(image.hasPrefix("sha256:") ? String(image.dropFirst(7)) : image))
                if !ok { mismatches.append("container \(wanted) runs image \(c.imageTag ?? c.image) (\(c.image)), expected \(image)") }
            }
        }
        for (_, c) in found where !matched.contains(c.id) {
            mismatches.append("unexpected container \(c.name) (image \(c.imageTag ?? c.image))")
        }
        return mismatches
    }
}

/// What a container or image export wrote.
public struct DockerExportResult: Sendable {
    /// "container hassio_supervisor (3f2a...)" or "image ghcr.io/x:latest (sha256:...)".
    public var what: String
    public var output: String
    public var layers: Int
    public var members: Int
    public var files: Int
    public var hardlinks: Int
    public var contentBytes: UInt64
    public var tarBytes: UInt64
    public var problems: [String]
}

extension Disk {
    /// The Docker data-roots of the booted namespace: inventory and integrity (docs/docker.md).
    public func docker(options: PlanOptions = PlanOptions()) throws -> DockerReport {
        let booted = try BootedNamespace(disk: self, options: options)
        return DataRootLocator.report(for: booted.namespace, binds: booted.binds)
    }

    /// Writes a container's (or, with `image: true`, an image's) merged filesystem as a tar
    /// archive with assemble's conventions: layers merged by `OverlayMerge`, whiteouts and opaque
    /// markers applied and left out, hardlinks as link members.
    public func exportDocker(_ reference: String, image: Bool, options: ExtractOptions, plan planOptions: PlanOptions = PlanOptions(),
                             dataRoot: String? = nil) throws -> DockerExportResult {
        let booted = try BootedNamespace(disk: self, options: planOptions)
        let (roots, _) = DataRootLocator.locate(in: booted.namespace, binds: booted.binds)
        let candidates = roots.map(\.root).filter { dataRoot == nil || $0.path == dataRoot }
        var lastError: Error = FWError(.notFound, "no Docker data-root found", disk: path)
        var chosen: (root: DataRoot, id: String, layers: [Layer])?
        for root in candidates {
            do {
                let (id, layers) = image ? try root.imageLayers(reference) : try root.containerLayers(reference)
                chosen = (root, id, layers)
                break
            } catch {
                lastError = error
            }
        }
        guard let chosen else {
            if let e = lastError as? FWError { throw e.within(disk: path) }
            throw lastError
        }
        let merged: NamespaceFileSystem
        do {
            merged = try NamespaceFileSystem(overlayOf: chosen.layers, name: "\(chosen.root.path) \(image ? "image" : "container") \(chosen.id)")
        } catch let e as FWError {
            throw e.within(disk: path)
        }
        let output = try OutputFile(path: options.output)
        var result = DockerExportResult(what: "\(image ? "image" : "container") \(reference) (\(chosen.id)) in \(chosen.root.path)",
                                        output: options.output, layers: chosen.layers.count, members: 0, files: 0,
                                        hardlinks: 0, contentBytes: 0, tarBytes: 0, problems: [])
        do {
            let tar = TarWriter(sink: try options.compression.sink(over: output.sink, threads: options.threads))
            var walk = TreeWalk(merged)
            let summary = try Archiver.archive(&walk, into: tar)
            try tar.finish()
            result.members = summary.members
            result.files = summary.files
            result.hardlinks = summary.hardlinks
            result.contentBytes = summary.contentBytes
            result.problems = summary.problems.map(\.description) + merged.problems.map(\.description)
            result.tarBytes = tar.bytesWritten
            try output.commit()
        } catch {
            output.abort()
            if let e = error as? FWError { throw e.within(disk: path) }
            throw error
        }
        return result
    }
}
