"""Faces followed from frame to frame: a track id per face, and smoothing per track.

The tracker is the simple kind that holds up for a webcam or a film: each track predicts
its box in the next frame from its last two boxes (constant velocity), and each new box
goes to the track whose prediction it overlaps most (IoU), else to the track whose
predicted centre is nearest (within one face width), else to a new track. A track that is
not seen for `max_missed` frames ends. When two faces cross, their predictions carry each
past the other, so they keep their ids as long as they keep moving; two faces that meet
and stop can swap ids. A face that leaves for longer than `max_missed` frames comes back
under a new id.

Between two face searches, follow() moves every track that its last search found along its
velocity, so a frame whose faces were not searched for still has a box for each: faces in
a webcam stream move a few pixels a frame, and the next search corrects the drift.
"""
import numpy as np


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


def _centre(box):
    return np.array([box[0] + box[2] / 2, box[1] + box[3] / 2], dtype=float)


# a box joins a track whose prediction it overlaps this much; a track unseen for more than MAX_MISSED frames ends
IOU_THRESHOLD, MAX_MISSED = 0.3, 5

class Track:
    """One face's id, boxes, velocity (of the box's corner, pixels per frame) and smoothed probabilities.

    seen_box is where a search last found the face; box is where it is now (seen_box, or where it
    was followed to); missed counts the searches since that did not find it, followed the frames
    it was followed through; seen counts the searches that found it.
    """

    def __init__(self, track_id, box):
        self.id, self.velocity, self.probabilities = track_id, np.zeros(2), None
        self.box = self.seen_box = tuple(box)
        self.missed = self.followed = 0
        self.seen = 1
        self.landmarks = None  # the last search's landmarks (YuNet), moved with the box while followed
        self.score = None  # the detector's confidence in the face at the last search that found it
        self.since_classified = 0  # frames since its probabilities were last computed (EmotionRecognizer)

    def predicted(self):
        """Where the box should be in the next frame, at constant velocity from the last search's box."""
        dx, dy = self.velocity * (self.missed + self.followed + 1)
        return (self.seen_box[0] + dx, self.seen_box[1] + dy, self.seen_box[2], self.seen_box[3])

    def see(self, box):
        """A search found the face at box: the velocity is measured from the last search's box."""
        steps = self.missed + self.followed + 1
        self.velocity = (np.array(box[:2], dtype=float) - np.array(self.seen_box[:2], dtype=float)) / steps
        self.box = self.seen_box = tuple(box)
        self.missed = self.followed = 0
        self.seen += 1


class Tracker:
    """Assigns a stable id to each face box across frames; see the module docstring for how."""

    def __init__(self, iou_threshold=IOU_THRESHOLD, max_missed=MAX_MISSED):
        self.iou_threshold, self.max_missed = iou_threshold, max_missed
        self.tracks, self.next_id = [], 0

    def reset(self):
        """Forgets every track (e.g. between unrelated photos); ids start again from 0."""
        self.tracks, self.next_id = [], 0

    def follow(self, width, height):
        """Moves each track to its predicted box for a frame that is not searched; returns the tracks.

        Returns None, moving nothing, when a search is needed instead: no track, a track the last
        search missed (a face lost, or gone for a moment), a track found by one search only (its
        velocity is not known yet), or a predicted box that leaves the width x height frame (a
        face on its way out, or one the prediction lost).
        """
        if not self.tracks or any(track.missed or track.seen < 2 for track in self.tracks):
            return None
        predicted = [track.predicted() for track in self.tracks]
        if any(x < 0 or y < 0 or x + w > width or y + h > height for x, y, w, h in predicted):
            return None
        for track, box in zip(self.tracks, predicted):
            if track.landmarks is not None:
                track.landmarks = track.landmarks + np.subtract(box[:2], track.box[:2])
            track.box = box
            track.followed += 1
        return list(self.tracks)

    def update(self, boxes):
        """The tracks of this frame's boxes, in the boxes' order."""
        predictions = [track.predicted() for track in self.tracks]
        pairs = sorted(((iou(box, predicted), i, j) for i, box in enumerate(boxes)
                        for j, predicted in enumerate(predictions)), reverse=True)
        assigned, taken = {}, set()
        for overlap, i, j in pairs:  # greedy: the best overlaps first
            if overlap >= self.iou_threshold and i not in assigned and j not in taken:
                assigned[i] = j
                taken.add(j)
        for i, box in enumerate(boxes):  # no overlap (a fast move): the nearest predicted centre
            if i in assigned:
                continue
            near = [(np.linalg.norm(_centre(box) - _centre(predictions[j])), j)
                    for j in range(len(self.tracks)) if j not in taken]
            distance, j = min(near, default=(np.inf, None))
            if j is not None and distance <= box[2]:
                assigned[i] = j
                taken.add(j)
        result = []
        for i, box in enumerate(boxes):
            if i in assigned:
                track = self.tracks[assigned[i]]
                track.see(box)
            else:
                track = Track(self.next_id, box)
                self.next_id += 1
                self.tracks.append(track)
            result.append(track)
        for j, track in enumerate(self.tracks):
            if j not in taken and track not in result:
                track.missed += 1
        self.tracks = [track for track in self.tracks if track.missed <= self.max_missed]
        return result
