package dps

import (
	"context"
	"strings"

	"github.com/usher-iot/usher/internal/fault"
)

// BulkMode is what a bulk enrollment operation does to each item.
type BulkMode string

// Bulk modes (dps-protocol.md §8.4). Parsed case-insensitively because the
// Node SDK spells the third one updateIfMatchEtag.
const (
	BulkCreate            BulkMode = "create"
	BulkUpdate            BulkMode = "update"
	BulkUpdateIfMatchETag BulkMode = "updateIfMatchETag"
	BulkDelete            BulkMode = "delete"
)

// MaxBulkItems is the most items one bulk operation may carry.
const MaxBulkItems = 10

// ParseBulkMode accepts a mode in any case.
func ParseBulkMode(s string) (BulkMode, error) {
	for _, m := range []BulkMode{BulkCreate, BulkUpdate, BulkUpdateIfMatchETag, BulkDelete} {
		if strings.EqualFold(s, string(m)) {
			return m, nil
		}
	}
	return "", fault.New(fault.Invalid, "mode %q is not one of create, update, updateIfMatchETag, delete", s)
}

// BulkError is the failure of one item of a bulk operation.
type BulkError struct {
	ID    string
	Kind  fault.Kind
	Error string
}

// BulkEnrollments applies mode to each enrollment independently: every item
// is written whole or not at all, and failures are reported per item.
func (s *Service) BulkEnrollments(ctx context.Context, mode BulkMode, items []Enrollment) ([]BulkError, error) {
	return bulk(ctx, s.enrollments, s, mode, items)
}

// BulkGroups is BulkEnrollments for enrollment groups.
func (s *Service) BulkGroups(ctx context.Context, mode BulkMode, items []Group) ([]BulkError, error) {
	return bulk(ctx, s.groups, s, mode, items)
}

func bulk[T any](ctx context.Context, k kind[T], s *Service, mode BulkMode, items []T) ([]BulkError, error) {
	if len(items) == 0 {
		return nil, fault.New(fault.Invalid, "a bulk operation needs at least one item")
	}
	if len(items) > MaxBulkItems {
		return nil, fault.New(fault.Invalid, "a bulk operation takes at most %d items; got %d", MaxBulkItems, len(items))
	}
	var errs []BulkError
	for i := range items {
		rec := items[i]
		var err error
		switch mode {
		case BulkCreate:
			_, err = k.put(ctx, s.now, rec, "", true)
		case BulkUpdate:
			_, err = k.put(ctx, s.now, rec, "", false)
		case BulkUpdateIfMatchETag:
			etag := k.settings(&rec).ETag
			if etag == "" {
				err = fault.New(fault.PreconditionFailed, "updateIfMatchETag needs an etag on every item")
				break
			}
			_, err = k.put(ctx, s.now, rec, etag, false)
		case BulkDelete:
			err = k.remove(ctx, k.id(&rec), k.settings(&rec).ETag)
		default:
			return nil, fault.New(fault.Invalid, "unknown bulk mode %q", mode)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, BulkError{ID: k.id(&rec), Kind: fault.KindOf(err), Error: fault.MessageOf(err)})
		}
	}
	return errs, nil
}
