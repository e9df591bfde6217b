package db_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
)

// Application code: open, change the tree in Update, read it in View.
// memstorage stands in for a host/client connection here.
func Example() {
	ctx := context.Background()
	st := memstorage.New(memstorage.Options{})
	defer st.Close()
	sessions := memstorage.New(memstorage.Options{})
	defer sessions.Close()

	d, err := db.Open(ctx, st, db.Options{
		Mounts: []db.Mount{{
			Name: "session_data",
			Path: "/session_data",
			Resolve: func(context.Context) (db.Target, error) {
				return db.Target{Partition: "sessiondata", Folder: "session_data"}, nil
			},
		}},
		OpenPartition: func(_ context.Context, partition, _ string) (storage.Storage, error) {
			return noClose{sessions}, nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	_, err = d.Update(ctx, func(tx *db.Tx) error {
		pages, err := tx.MkdirAll(ctx, "/site/pages")
		if err != nil {
			return err
		}
		if err := pages.Put(ctx, "home", db.NewDocument(map[string]any{"title": "Home"})); err != nil {
			return err
		}
		hits, err := tx.Counter(ctx, "/site/hits")
		if errors.Is(err, db.ErrNotFound) {
			return tx.Put(ctx, "/site/hits", db.NewCounter(1))
		} else if err != nil {
			return err
		}
		hits.Add(1)
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	err = d.View(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/site/pages/home")
		if err != nil {
			return err
		}
		root, err := tx.Root(ctx)
		if err != nil {
			return err
		}
		names, err := root.Names(ctx)
		if err != nil {
			return err
		}
		mounted, err := tx.Folder(ctx, "/session_data")
		if err != nil {
			return err
		}
		fmt.Println(doc.Data["title"], names, mounted.Partition())
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: Home [session_data site] sessiondata
}
